// Every dtype, both eps modes, scaled and not, across a sweep of row lengths that exercises every
// kernel shape (short rows several to a block, one block a row, rows split across blocks), checked
// against a float64 reference within docs/DESIGN.md's budgets.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

std::vector<std::int64_t> sweep_dims() {
  std::set<std::int64_t> dims;
  for (std::int64_t d = 1; d <= 33; ++d) dims.insert(d);
  for (int k = 1; k <= 16; ++k) {
    const std::int64_t p = std::int64_t{1} << k;
    dims.insert({p - 1, p, p + 1});
  }
  dims.insert({100, 384, 768, 1000, 1536, 3584, 4096, std::int64_t{1} << 20});
  return {dims.begin(), dims.end()};
}

// Enough rows to use several blocks and threads, few enough that the float64 reference stays fast.
std::int64_t rows_for(std::int64_t dim) {
  return std::clamp<std::int64_t>((std::int64_t{1} << 17) / dim, 1, 67);
}

class DimSweep : public OnEveryBackend {};

TEST_P(DimSweep, AllDTypesAndModesWithinBudget) {
  std::uint64_t seed = 1;
  for (const std::int64_t dim : sweep_dims()) {
    const std::int64_t rows = rows_for(dim);
    for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      const HostTensor input = random_tensor(dtype, std::size_t(rows * dim), seed++);
      for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
        for (const float scale : {1.0f, 0.0883883476f}) {
          const L2NormOptions options{.eps = 1e-6f, .scale = scale, .eps_mode = mode};
          const HostTensor out = run_l2_norm(device(), input, rows, dim, options);
          const std::string what = std::string(dtype_name(dtype)) + " dim=" + std::to_string(dim) +
                                   " rows=" + std::to_string(rows) + " " +
                                   std::string(eps_mode_name(mode)) +
                                   " scale=" + std::to_string(scale);
          expect_within_budget(out, reference_l2_norm(input, rows, dim, options), dim,
                               scale != 1.0f, what.c_str());
          if (::testing::Test::HasFailure()) return;  // one clear failure beats thousands
        }
      }
    }
  }
}

TEST_P(DimSweep, SameInputGivesBitwiseSameOutput) {
  for (const std::int64_t dim :
       {std::int64_t{7}, std::int64_t{128}, std::int64_t{4099}, std::int64_t{1} << 18}) {
    const std::int64_t rows = rows_for(dim);
    for (const DType dtype : {DType::f32, DType::bf16}) {
      const HostTensor input = random_tensor(dtype, std::size_t(rows * dim), 99);
      const HostTensor first = run_l2_norm(device(), input, rows, dim, {});
      for (int run = 0; run < 3; ++run) {
        EXPECT_TRUE(first.bitwise_equal(run_l2_norm(device(), input, rows, dim, {})))
            << dtype_name(dtype) << " dim " << dim << " run " << run;
      }
    }
  }
}

TEST_P(DimSweep, ThreadCountDoesNotChangeBits) {
  const std::int64_t rows = 1000, dim = 300;
  const HostTensor input = random_tensor(DType::f32, rows * dim, 5);
  set_cpu_thread_count(1);
  const HostTensor reference = run_l2_norm(device(), input, rows, dim, {});
  for (const int threads : {2, 3, 7}) {
    set_cpu_thread_count(threads);
    EXPECT_TRUE(reference.bitwise_equal(run_l2_norm(device(), input, rows, dim, {})))
        << threads << " threads";
  }
  set_cpu_thread_count(0);
}

INSTANTIATE_TEST_SUITE_P(Backends, DimSweep, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

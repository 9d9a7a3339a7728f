// CPU-specific behaviour of l2_norm: results independent of the thread count, the store path
// (cached or streaming), pointer alignment and row layout, bit for bit; long rows; accuracy of the
// vector kernel against the float64 reference. The backend-independent cases live in tests/ops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/cache_size.hpp"
#include "l2norm/l2norm.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

constexpr DType kAllDTypes[] = {DType::f32, DType::f16, DType::bf16};

struct Shape {
  std::int64_t rows;
  std::int64_t dim;
};

std::string describe(DType dtype, Shape shape, const L2NormOptions& options) {
  return std::string(dtype_name(dtype)) + " " + std::to_string(shape.rows) + "x" +
         std::to_string(shape.dim) + " " + std::string(eps_mode_name(options.eps_mode)) +
         " scale " + std::to_string(options.scale);
}

// Random rows with a few that take the double path: zero, huge, tiny, NaN and Inf rows.
HostTensor input_with_special_rows(DType dtype, Shape shape, std::uint64_t seed) {
  HostTensor input = random_tensor(dtype, std::size_t(shape.rows * shape.dim), seed);
  const auto set_row = [&](std::int64_t row, auto value_of) {
    if (row >= shape.rows) return;
    for (std::int64_t j = 0; j < shape.dim; ++j) {
      input.set(std::size_t(row * shape.dim + j), value_of(j));
    }
  };
  const float huge = dtype == DType::f16 ? 60000.0f : 3e20f;
  const float tiny = dtype == DType::f16 ? 6e-8f : 1e-40f;
  set_row(1, [](std::int64_t) { return 0.0f; });
  set_row(3, [&](std::int64_t j) { return j % 2 ? huge : -huge; });
  set_row(5, [&](std::int64_t j) { return j % 3 ? tiny : 0.0f; });
  if (shape.rows > 7)
    input.set(std::size_t(7 * shape.dim), std::numeric_limits<float>::quiet_NaN());
  if (shape.rows > 9)
    input.set(std::size_t(9 * shape.dim + shape.dim / 2), -std::numeric_limits<float>::infinity());
  return input;
}

// Runs l2_norm on host memory in place of device buffers, so pointers can be offset at will.
std::string run_on(const TensorView& input, const TensorView& output,
                   const L2NormOptions& options) {
  CommandEncoder encoder(Device::cpu());
  l2_norm(encoder, input, output, options);
  const std::string variant = encoder.recorded().back().variant;
  encoder.wait();
  return variant;
}

HostTensor normalize_contiguous(const HostTensor& input, Shape shape, const L2NormOptions& options,
                                std::string* variant = nullptr) {
  HostTensor output(input.dtype(), input.count());
  output.fill_poison();
  const std::string picked = run_on(
      TensorView(const_cast<void*>(input.data()), input.dtype(), Device::cpu(),
                 {shape.rows, shape.dim}),
      TensorView(output.data(), input.dtype(), Device::cpu(), {shape.rows, shape.dim}), options);
  if (variant != nullptr) *variant = picked;
  return output;
}

// Bytes of one element range, for bitwise comparisons of sub-ranges.
bool same_bits(const void* a, const void* b, std::size_t bytes) {
  return std::memcmp(a, b, bytes) == 0;
}

class CpuThreads : public ::testing::Test {
 protected:
  void TearDown() override { set_cpu_thread_count(0); }
};

TEST_F(CpuThreads, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  const Shape shapes[] = {{1, 1},     {3, 7},    {17, 100},  {64, 128},   {33, 129},   {5, 1000},
                          {300, 384}, {7, 4097}, {2, 65537}, {1000, 768}, {4096, 128}, {12289, 96}};
  const L2NormOptions option_sets[] = {
      {}, {.eps = 0.0f, .scale = 0.125f}, {.eps = 1e-12f, .eps_mode = EpsMode::clamp}};
  for (const DType dtype : kAllDTypes) {
    for (const Shape shape : shapes) {
      const HostTensor input = input_with_special_rows(dtype, shape, 7);
      for (const L2NormOptions& options : option_sets) {
        set_cpu_thread_count(1);
        const HostTensor single = normalize_contiguous(input, shape, options);
        for (const int threads : {2, 3, 7}) {
          set_cpu_thread_count(threads);
          const HostTensor multi = normalize_contiguous(input, shape, options);
          EXPECT_TRUE(multi.bitwise_equal(single))
              << describe(dtype, shape, options) << " with " << threads << " threads";
        }
      }
    }
  }
}

TEST(CpuL2Norm, MatchesTheFloat64ReferenceWithinBudget) {
  const Shape shapes[] = {{64, 1},   {64, 15},   {64, 16},   {64, 17},   {64, 127},
                          {64, 128}, {64, 129},  {16, 384},  {16, 1000}, {8, 4096},
                          {4, 5000}, {2, 65536}, {1, 333333}};
  const L2NormOptions option_sets[] = {
      {}, {.eps = 1e-3f, .scale = 0.0883883476f}, {.eps = 1e-12f, .eps_mode = EpsMode::clamp}};
  for (const DType dtype : kAllDTypes) {
    for (const Shape shape : shapes) {
      const HostTensor input = random_tensor(dtype, std::size_t(shape.rows * shape.dim), 99);
      for (const L2NormOptions& options : option_sets) {
        const HostTensor output = normalize_contiguous(input, shape, options);
        expect_within_budget(output, reference_l2_norm(input, shape.rows, shape.dim, options),
                             shape.dim, options.scale != 1.0f,
                             describe(dtype, shape, options).c_str());
      }
    }
  }
}

// Rows of 2^20 elements and more: two passes over a row larger than the L2 cache, and the double
// path on such a row.
TEST(CpuL2Norm, LongRows) {
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const std::int64_t dim : {std::int64_t{1} << 20, (std::int64_t{1} << 20) + 3}) {
      const Shape shape{3, dim};
      HostTensor input = random_tensor(dtype, std::size_t(shape.rows * dim), 5);
      input.set(std::size_t(2 * dim + 12345), std::numeric_limits<float>::infinity());
      const L2NormOptions options{.eps = 1e-6f, .scale = 0.5f};
      const HostTensor output = normalize_contiguous(input, shape, options);
      expect_within_budget(output, reference_l2_norm(input, shape.rows, dim, options), dim, true,
                           describe(dtype, shape, options).c_str());
      set_cpu_thread_count(3);
      EXPECT_TRUE(normalize_contiguous(input, shape, options).bitwise_equal(output));
      set_cpu_thread_count(0);
    }
  }
}

TEST(CpuL2Norm, RarePathGivesTheExactAnswersOfTheDesign) {
  std::vector<float> rows = {3e20f, 4e20f, 1e-40f, 0.0f, 0.0f, 0.0f, 2.0f, 0.0f};
  const TensorView view(rows.data(), DType::f32, Device::cpu(), {4, 2});
  run_on(view, view, {.eps = 1e-6f});
  EXPECT_FLOAT_EQ(rows[0], 0.6f);
  EXPECT_FLOAT_EQ(rows[1], 0.8f);
  EXPECT_NEAR(rows[2], double(1e-40f) / std::sqrt(double(1e-40f) * double(1e-40f) + double(1e-6f)),
              1e-45);  // not flushed
  EXPECT_EQ(rows[4], 0.0f);
  EXPECT_EQ(rows[5], 0.0f);
  EXPECT_FLOAT_EQ(rows[6], float(2.0 / std::sqrt(4.0 + double(1e-6f))));
}

// In place, a job larger than the last-level cache stores its rows with ordinary stores (the
// rows' lines are owned after the read, so there is no read for ownership for streaming to skip),
// and gives the bits the same rows give out of place.
TEST(CpuL2Norm, InPlaceJobsStoreCachedWithTheSameBits) {
  const std::int64_t threshold = detail::cpu::streaming_threshold_bytes();
  if (threshold > (std::int64_t{1} << 30)) {
    GTEST_SKIP() << "last-level cache of " << threshold << " bytes: too large to exceed here";
  }
  for (const DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    const std::int64_t dim = 768;
    const std::int64_t rows = threshold / (dim * std::int64_t(dtype_size(dtype))) + 64;
    const L2NormOptions options{.eps = 1e-6f, .scale = 0.5f};
    const HostTensor input = input_with_special_rows(dtype, Shape{rows, dim}, 5);
    HostTensor output(dtype, input.count());
    const std::string streamed =
        run_on(TensorView(const_cast<void*>(input.data()), dtype, Device::cpu(), {rows, dim}),
               TensorView(output.data(), dtype, Device::cpu(), {rows, dim}), options);
    EXPECT_NE(streamed.find("streaming"), std::string::npos) << streamed;
    HostTensor in_place(dtype, input.count());
    std::memcpy(in_place.data(), input.data(), input.bytes());
    const TensorView view(in_place.data(), dtype, Device::cpu(), {rows, dim});
    const std::string cached = run_on(view, view, options);
    EXPECT_NE(cached.find("cached"), std::string::npos) << cached;
    EXPECT_TRUE(same_bits(in_place.data(), output.data(), input.bytes())) << dtype_name(dtype);
  }
}

// Jobs moving more bytes than the last-level cache holds write with non-temporal stores; the
// values must not change. Each slice of rows run on its own (small, cached) must give the same
// bits, also with input and output pointers off the 16-byte grid and rows that end mid-vector.
TEST(CpuL2Norm, StreamingStoresMatchCachedStores) {
  const std::int64_t threshold = detail::cpu::streaming_threshold_bytes();
  if (threshold > (std::int64_t{1} << 30)) {
    GTEST_SKIP() << "last-level cache of " << threshold << " bytes: too large to exceed here";
  }
  for (const DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    const std::int64_t element_bytes = std::int64_t(dtype_size(dtype));
    for (const std::int64_t dim : {std::int64_t{512}, std::int64_t{387}}) {
      for (const std::int64_t offset : {std::int64_t{0}, std::int64_t{1}, std::int64_t{3}}) {
        const std::int64_t rows = threshold / (2 * dim * element_bytes) + 64;
        const Shape shape{rows, dim};
        const L2NormOptions options{.eps = 1e-6f, .scale = 1.5f};
        const HostTensor input = input_with_special_rows(dtype, shape, 11);
        HostTensor input_storage(dtype, input.count() + std::size_t(offset));
        std::memcpy(static_cast<std::byte*>(input_storage.data()) + offset * element_bytes,
                    input.data(), input.bytes());
        HostTensor output_storage(dtype, input.count() + 16);
        output_storage.fill_poison();
        const std::size_t shift = std::size_t(offset * element_bytes);
        auto* in = static_cast<std::byte*>(input_storage.data()) + shift;
        auto* out = static_cast<std::byte*>(output_storage.data()) + (shift * 2) % 16;
        const std::string variant =
            run_on(TensorView(in, dtype, Device::cpu(), {rows, dim}),
                   TensorView(out, dtype, Device::cpu(), {rows, dim}), options);
        EXPECT_NE(variant.find("streaming"), std::string::npos) << variant;
        // Whole lines are streamed only where the rows fill them: the bytes around the output
        // keep their poison.
        HostTensor poison(dtype, input.count() + 16);
        poison.fill_poison();
        const auto* storage = static_cast<const std::byte*>(output_storage.data());
        const auto* fresh = static_cast<const std::byte*>(poison.data());
        const auto before =
            static_cast<std::size_t>(out - static_cast<std::byte*>(output_storage.data()));
        const std::size_t after = before + input.bytes();
        EXPECT_TRUE(same_bits(storage, fresh, before));
        EXPECT_TRUE(same_bits(storage + after, fresh + after, output_storage.bytes() - after));

        const std::int64_t slice_rows = 256;
        const std::int64_t row_bytes = dim * element_bytes;
        std::vector<std::byte> slice_output(std::size_t(slice_rows * row_bytes));
        for (std::int64_t first = 0; first < rows; first += slice_rows) {
          const std::int64_t count = std::min(slice_rows, rows - first);
          const std::string small_variant =
              run_on(TensorView(in + first * row_bytes, dtype, Device::cpu(), {count, dim}),
                     TensorView(slice_output.data(), dtype, Device::cpu(), {count, dim}), options);
          ASSERT_NE(small_variant.find("cached"), std::string::npos) << small_variant;
          ASSERT_TRUE(same_bits(out + first * row_bytes, slice_output.data(),
                                std::size_t(count * row_bytes)))
              << dtype_name(dtype) << " dim " << dim << " offset " << offset << ": rows " << first
              << ".." << first + count << " differ between streaming and cached stores";
        }
      }
    }
  }
}

// A row's bits do not depend on where it lives: offset base pointers (1..7 elements) and strided
// layouts give exactly the bits of the same rows run packed and aligned.
TEST(CpuL2Norm, UnalignedPointersGiveTheAlignedBits) {
  for (const DType dtype : kAllDTypes) {
    const std::int64_t element_bytes = std::int64_t(dtype_size(dtype));
    for (const Shape shape : {Shape{37, 128}, Shape{21, 77}, Shape{9, 1031}}) {
      const HostTensor input = input_with_special_rows(dtype, shape, 3);
      const L2NormOptions options{.eps = 1e-5f, .scale = 3.0f};
      const HostTensor aligned = normalize_contiguous(input, shape, options);
      for (std::int64_t in_shift = 0; in_shift <= 7; ++in_shift) {
        for (const std::int64_t out_shift : {std::int64_t{0}, 7 - in_shift}) {
          std::vector<std::byte> in_storage(input.bytes() + 64);
          std::vector<std::byte> out_storage(input.bytes() + 64);
          std::memcpy(in_storage.data() + in_shift * element_bytes, input.data(), input.bytes());
          std::byte* out = out_storage.data() + out_shift * element_bytes;
          run_on(TensorView(in_storage.data() + in_shift * element_bytes, dtype, Device::cpu(),
                            {shape.rows, shape.dim}),
                 TensorView(out, dtype, Device::cpu(), {shape.rows, shape.dim}), options);
          EXPECT_TRUE(same_bits(out, aligned.data(), aligned.bytes()))
              << describe(dtype, shape, options) << " input offset " << in_shift
              << " output offset " << out_shift;
        }
      }
    }
  }
}

TEST(CpuL2Norm, InPlaceGivesTheOutOfPlaceBits) {
  for (const DType dtype : kAllDTypes) {
    for (const Shape shape : {Shape{100, 128}, Shape{3, 70001}, Shape{5000, 300}}) {
      const HostTensor input = input_with_special_rows(dtype, shape, 21);
      const L2NormOptions options{.eps = 1e-6f, .scale = 0.25f, .eps_mode = EpsMode::clamp};
      const HostTensor expected = normalize_contiguous(input, shape, options);
      HostTensor data = input;
      const TensorView view(data.data(), dtype, Device::cpu(), {shape.rows, shape.dim});
      run_on(view, view, options);
      EXPECT_TRUE(data.bitwise_equal(expected)) << describe(dtype, shape, options);
    }
  }
}

// Leading dims that cannot be merged reach the kernel as outer_rank 2 and 3, with different
// input and output strides. Rows must hold the bits of the packed run, and gaps stay untouched.
TEST(CpuL2Norm, StridedLayoutsOfRank3And4) {
  struct Case {
    std::vector<std::int64_t> shape, input_strides, output_strides;
  };
  const Case cases[] = {
      {{4, 6, 130}, {6 * 200 + 7, 200, 1}, {6 * 131 + 5, 131, 1}},
      {{3, 5, 128}, {128, 3 * 128 + 64, 1}, {5 * 140, 140, 1}},
      {{2, 3, 5, 96}, {3 * 5 * 100 + 11, 5 * 100 + 3, 100, 1}, {3 * 5 * 97 + 1, 5 * 97, 97, 1}},
      {{3, 2, 4, 33}, {2 * 4 * 33 * 2, 4 * 33 + 33, 33, 1}, {200 * 3, 100 * 2 + 1, 50, 1}},
  };
  for (const DType dtype : kAllDTypes) {
    for (const Case& c : cases) {
      const int rank = int(c.shape.size());
      const std::int64_t dim = c.shape.back();
      std::int64_t rows = 1;
      for (int i = 0; i + 1 < rank; ++i) rows *= c.shape[std::size_t(i)];
      const auto extent = [&](const std::vector<std::int64_t>& strides) {
        std::int64_t last = 0;
        for (int i = 0; i < rank; ++i) {
          last += (c.shape[std::size_t(i)] - 1) * strides[std::size_t(i)];
        }
        return last + 1;
      };
      const HostTensor input_storage =
          input_with_special_rows(dtype, {1, extent(c.input_strides)}, 31);
      HostTensor output_storage = random_tensor(dtype, std::size_t(extent(c.output_strides)), 32);
      const HostTensor output_before = output_storage;
      const L2NormOptions options{.eps = 1e-6f, .scale = 2.0f};
      run_on(TensorView(const_cast<void*>(input_storage.data()), dtype, Device::cpu(), c.shape,
                        c.input_strides),
             TensorView(output_storage.data(), dtype, Device::cpu(), c.shape, c.output_strides),
             options);

      HostTensor packed_input(dtype, std::size_t(rows * dim));
      std::vector<std::int64_t> output_rows;
      for (std::int64_t r = 0; r < rows; ++r) {
        std::int64_t rest = r, in_row = 0, out_row = 0;
        for (int i = rank - 2; i >= 0; --i) {
          const std::int64_t index = rest % c.shape[std::size_t(i)];
          rest /= c.shape[std::size_t(i)];
          in_row += index * c.input_strides[std::size_t(i)];
          out_row += index * c.output_strides[std::size_t(i)];
        }
        output_rows.push_back(out_row);
        for (std::int64_t j = 0; j < dim; ++j) {
          packed_input.set(std::size_t(r * dim + j), input_storage.get(std::size_t(in_row + j)));
        }
      }
      const HostTensor packed_output = normalize_contiguous(packed_input, {rows, dim}, options);
      const std::size_t element_bytes = dtype_size(dtype);
      std::vector<bool> written(output_storage.count(), false);
      for (std::int64_t r = 0; r < rows; ++r) {
        const auto* got = static_cast<const std::byte*>(output_storage.data()) +
                          std::size_t(output_rows[std::size_t(r)]) * element_bytes;
        const auto* expected = static_cast<const std::byte*>(packed_output.data()) +
                               std::size_t(r * dim) * element_bytes;
        EXPECT_TRUE(same_bits(got, expected, std::size_t(dim) * element_bytes))
            << dtype_name(dtype) << " rank " << rank << " row " << r;
        for (std::int64_t j = 0; j < dim; ++j) {
          written[std::size_t(output_rows[std::size_t(r)] + j)] = true;
        }
      }
      std::size_t clobbered = 0;
      for (std::size_t i = 0; i < written.size(); ++i) {
        if (!written[i]) {
          clobbered +=
              !same_bits(static_cast<const std::byte*>(output_storage.data()) + i * element_bytes,
                         static_cast<const std::byte*>(output_before.data()) + i * element_bytes,
                         element_bytes);
        }
      }
      EXPECT_EQ(clobbered, 0u) << dtype_name(dtype) << " rank " << rank;
    }
  }
}

}  // namespace
}  // namespace l2norm::testing

// The seed's own test cases (mlx-native l2_norm), run on every backend and every dtype.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

class SeedCases : public OnEveryBackend {};

constexpr DType kAllDTypes[] = {DType::f32, DType::f16, DType::bf16};

HostTensor from_values(DType dtype, std::initializer_list<float> values) {
  HostTensor tensor(dtype, values.size());
  std::size_t i = 0;
  for (const float value : values) tensor.set(i++, value);
  return tensor;
}

TEST_P(SeedCases, ThreeFourFiveTriangle) {
  for (const DType dtype : kAllDTypes) {
    const HostTensor out = run_l2_norm(device(), from_values(dtype, {3, 4}), 1, 2, {.eps = 0});
    const double tolerance = dtype == DType::f32 ? 1e-7 : 4e-3;
    EXPECT_NEAR(out.get(0), 0.6, tolerance) << dtype_name(dtype);
    EXPECT_NEAR(out.get(1), 0.8, tolerance) << dtype_name(dtype);
  }
}

TEST_P(SeedCases, SeveralRowsAreIndependent) {
  for (const DType dtype : kAllDTypes) {
    const HostTensor input = from_values(dtype, {3, 4, 0, 0, 1, 0, 0, -2, 0, 6, 8, 0});
    const L2NormOptions options{.eps = 1e-6f};
    const HostTensor out = run_l2_norm(device(), input, 3, 4, options);
    expect_within_budget(out, reference_l2_norm(input, 3, 4, options), 4, false,
                         dtype_name(dtype).data());
  }
}

TEST_P(SeedCases, ZeroRowWithEpsStaysFiniteAndZero) {
  for (const DType dtype : kAllDTypes) {
    for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
      const HostTensor out = run_l2_norm(device(), from_values(dtype, {0, 0, 0, 0}), 1, 4,
                                         {.eps = 1e-6f, .eps_mode = mode});
      for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(out.get(i), 0.0f) << dtype_name(dtype);
    }
  }
}

TEST_P(SeedCases, EpsChangesTheResult) {
  const HostTensor input = from_values(DType::f32, {0.001f, 0.002f});
  const HostTensor small = run_l2_norm(device(), input, 1, 2, {.eps = 1e-12f});
  const HostTensor large = run_l2_norm(device(), input, 1, 2, {.eps = 1e-2f});
  EXPECT_NEAR(small.get(0), 0.4472136, 1e-5);
  EXPECT_LT(large.get(0), 0.02f);
  expect_within_budget(large, reference_l2_norm(input, 1, 2, {.eps = 1e-2f}), 2, false, "eps");
}

TEST_P(SeedCases, Bf16MatchesF32WithinSeedTolerance) {
  const HostTensor input32 = random_tensor(DType::f32, 4 * 256, 7);
  HostTensor input16(DType::bf16, input32.count());
  for (std::size_t i = 0; i < input32.count(); ++i) input16.set(i, input32.get(i));
  const HostTensor out32 = run_l2_norm(device(), input32, 4, 256, {});
  const HostTensor out16 = run_l2_norm(device(), input16, 4, 256, {});
  for (std::size_t i = 0; i < input32.count(); ++i) EXPECT_NEAR(out16.get(i), out32.get(i), 1e-2);
}

// The fused scale must equal normalize-then-multiply bit for bit (a 1-ulp drift in the scaled q
// flipped greedy tokens in Gated DeltaNet). The second pass is done here on the host, in f32, with
// the result rounded to the storage type, exactly as a separate multiply kernel would.
TEST_P(SeedCases, FusedScaleIsBitIdenticalToSeparateMultiply) {
  constexpr std::int64_t rows = 32, dim = 128;
  constexpr float scale = 0.123456f;
  for (const DType dtype : kAllDTypes) {
    for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
      const HostTensor input = random_tensor(dtype, rows * dim, 11);
      const HostTensor fused =
          run_l2_norm(device(), input, rows, dim, {.eps = 1e-6f, .scale = scale, .eps_mode = mode});
      HostTensor separate =
          run_l2_norm(device(), input, rows, dim, {.eps = 1e-6f, .eps_mode = mode});
      for (std::size_t i = 0; i < separate.count(); ++i) {
        volatile float product = separate.get(i) * scale;  // volatile: no contraction, one rounding
        separate.set(i, product);
      }
      std::size_t mismatches = 0;
      for (std::size_t i = 0; i < fused.count(); ++i) {
        mismatches += std::bit_cast<std::uint32_t>(fused.get(i)) !=
                      std::bit_cast<std::uint32_t>(separate.get(i));
      }
      EXPECT_EQ(mismatches, 0u) << dtype_name(dtype) << " " << eps_mode_name(mode);
    }
  }
}

TEST_P(SeedCases, EncoderRecordsDispatches) {
  Buffer in(device(), DType::f32, 2 * 64);
  Buffer out(device(), DType::f32, 2 * 64);
  const HostTensor input = random_tensor(DType::f32, 128, 3);
  in.copy_from_host(input.data(), input.bytes());
  CommandEncoder encoder(device());
  l2_norm(encoder, in, out, 2, 64);
  l2_norm(encoder, out, out, 2, 64, {.scale = 2.0f});
  ASSERT_EQ(encoder.recorded().size(), 2u);
  EXPECT_EQ(encoder.recorded()[0].op, "l2_norm");
  EXPECT_FALSE(encoder.recorded()[0].variant.empty());
  EXPECT_EQ(encoder.recorded()[1].rows, 2);
  EXPECT_EQ(encoder.recorded()[1].dim, 64);
  EXPECT_EQ(encoder.commit(), 2u);
  EXPECT_TRUE(encoder.recorded().empty());
  encoder.wait();
}

INSTANTIATE_TEST_SUITE_P(Backends, SeedCases, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

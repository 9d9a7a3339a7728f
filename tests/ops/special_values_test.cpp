// Edge cases and the answers docs/DESIGN.md promises for them.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

class SpecialValues : public OnEveryBackend {
 protected:
  // One row of `values` (padded with zeros to `dim`) through l2_norm.
  HostTensor normalize_row(DType dtype, std::initializer_list<float> values, std::int64_t dim,
                           const L2NormOptions& options) {
    HostTensor input(dtype, std::size_t(dim));
    for (std::int64_t i = 0; i < dim; ++i) input.set(std::size_t(i), 0.0f);
    std::size_t i = 0;
    for (const float value : values) input.set(i++, value);
    return run_l2_norm(device(), input, 1, dim, options);
  }
};

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
// Row lengths that reach the different kernel shapes.
constexpr std::int64_t kDims[] = {2, 128, 5000, 70000};

TEST_P(SpecialValues, HugeValuesDoNotOverflow) {
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : {DType::f32, DType::bf16}) {
      for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
        const HostTensor out = normalize_row(dtype, {3e20f, 4e20f}, dim, {.eps_mode = mode});
        const double tolerance = dtype == DType::f32 ? 1e-6 : 4e-3;
        EXPECT_NEAR(out.get(0), 0.6, tolerance) << dtype_name(dtype) << " dim " << dim;
        EXPECT_NEAR(out.get(1), 0.8, tolerance) << dtype_name(dtype) << " dim " << dim;
        EXPECT_EQ(out.get(2 % std::size_t(dim)), dim > 2 ? 0.0f : out.get(0));
      }
    }
  }
}

TEST_P(SpecialValues, F16MaximumIsSquaredInF32) {
  const HostTensor out = normalize_row(DType::f16, {65504.0f, 65504.0f}, 2, {});
  EXPECT_NEAR(out.get(0), 0.70710678, 1e-3);
  EXPECT_NEAR(out.get(1), 0.70710678, 1e-3);
}

TEST_P(SpecialValues, SubnormalInputsAreNotFlushed) {
  for (const std::int64_t dim : kDims) {
    const HostTensor out = normalize_row(DType::f32, {1e-40f, 1e-40f}, dim, {.eps = 0.0f});
    EXPECT_NEAR(out.get(0), 0.70710678, 1e-6) << "dim " << dim;
    const HostTensor with_eps = normalize_row(DType::f32, {1e-40f}, dim, {.eps = 1e-6f});
    EXPECT_NEAR(with_eps.get(0), 1e-37, 1e-42) << "dim " << dim;
    EXPECT_GT(with_eps.get(0), 0.0f) << "dim " << dim;
  }
}

TEST_P(SpecialValues, NaNAnywhereMakesTheWholeRowNaN) {
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      const HostTensor out = normalize_row(dtype, {1.0f, kNaN}, dim, {});
      for (std::int64_t i = 0; i < dim; ++i) {
        ASSERT_TRUE(std::isnan(out.get(std::size_t(i)))) << dtype_name(dtype) << " element " << i;
      }
    }
  }
}

TEST_P(SpecialValues, InfinityGivesNaNThereAndZeroElsewhere) {
  for (const std::int64_t dim : kDims) {
    const HostTensor out = normalize_row(DType::f32, {kInf, 1.0f}, dim, {});
    EXPECT_TRUE(std::isnan(out.get(0))) << "dim " << dim;
    EXPECT_EQ(out.get(1), 0.0f) << "dim " << dim;
  }
}

TEST_P(SpecialValues, ZeroRowWithZeroEpsIsNaNInBothModes) {
  for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
    const HostTensor out = normalize_row(DType::f32, {0.0f}, 64, {.eps = 0.0f, .eps_mode = mode});
    EXPECT_TRUE(std::isnan(out.get(0))) << eps_mode_name(mode);
  }
}

TEST_P(SpecialValues, ClampModeDividesByEpsBelowIt) {
  const HostTensor out =
      normalize_row(DType::f32, {3e-4f, 4e-4f}, 16, {.eps = 1e-2f, .eps_mode = EpsMode::clamp});
  EXPECT_NEAR(out.get(0), 3e-2, 1e-8);
  EXPECT_NEAR(out.get(1), 4e-2, 1e-8);
}

TEST_P(SpecialValues, EpsIsAddedInF32ForHalfData) {
  // 1e-12 is 0 in f16; added in f16 the zero row would be 0/0.
  const HostTensor out = normalize_row(DType::f16, {0.0f, 0.0f}, 2, {.eps = 1e-12f});
  EXPECT_EQ(out.get(0), 0.0f);
}

TEST_P(SpecialValues, NegativeScaleAndZeroScale) {
  const HostTensor negative =
      normalize_row(DType::f32, {3.0f, 4.0f}, 2, {.eps = 0, .scale = -2.0f});
  EXPECT_FLOAT_EQ(negative.get(0), -1.2f);
  const HostTensor zero = normalize_row(DType::bf16, {3.0f, 4.0f}, 2, {.scale = 0.0f});
  EXPECT_EQ(zero.get(1), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Backends, SpecialValues, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

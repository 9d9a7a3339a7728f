// Edge cases and the answers docs/DESIGN.md promises for them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

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

// Row lengths that reach the different kernel shapes.
constexpr std::int64_t kDims[] = {2, 128, 5000, 70000};

std::string describe(DType dtype, EpsMode mode, std::int64_t dim) {
  return std::string(dtype_name(dtype)) + " " + std::string(eps_mode_name(mode)) + " dim " +
         std::to_string(dim);
}

TEST_P(SpecialValues, HugeValuesDoNotOverflow) {
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : {DType::f32, DType::bf16}) {
      for (const EpsMode mode : kModes) {
        const HostTensor out = normalize_row(dtype, {3e20f, 4e20f}, dim, {.eps_mode = mode});
        const double tolerance = dtype == DType::f32 ? 1e-6 : 4e-3;
        EXPECT_NEAR(out.get(0), 0.6, tolerance) << describe(dtype, mode, dim);
        EXPECT_NEAR(out.get(1), 0.8, tolerance) << describe(dtype, mode, dim);
        EXPECT_EQ(out.get(2 % std::size_t(dim)), dim > 2 ? 0.0f : out.get(0));
      }
    }
  }
}

TEST_P(SpecialValues, F16MaximumIsSquaredInF32) {
  for (const EpsMode mode : kModes) {
    const HostTensor out = normalize_row(DType::f16, {65504.0f, 65504.0f}, 2, {.eps_mode = mode});
    EXPECT_NEAR(out.get(0), 0.70710678, 1e-3) << eps_mode_name(mode);
    EXPECT_NEAR(out.get(1), 0.70710678, 1e-3) << eps_mode_name(mode);
  }
}

TEST_P(SpecialValues, SubnormalInputsAreNotFlushed) {
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : {DType::f32, DType::bf16}) {
      for (const EpsMode mode : kModes) {
        const double tolerance = dtype == DType::f32 ? 1e-6 : 4e-3;
        const HostTensor out =
            normalize_row(dtype, {1e-40f, 1e-40f}, dim, {.eps = 0.0f, .eps_mode = mode});
        EXPECT_NEAR(out.get(0), 0.70710678, tolerance) << describe(dtype, mode, dim);
        EXPECT_EQ(out.get(1), out.get(0)) << describe(dtype, mode, dim);
      }
    }
    // With eps above the norm: add gives x / sqrt(eps), clamp x / eps; neither flushes to 0.
    const HostTensor added = normalize_row(DType::f32, {1e-40f}, dim, {.eps = 1e-6f});
    EXPECT_NEAR(added.get(0), 1e-37, 1e-42) << "dim " << dim;
    EXPECT_GT(added.get(0), 0.0f) << "dim " << dim;
    const HostTensor clamped =
        normalize_row(DType::f32, {1e-40f}, dim, {.eps = 1e-6f, .eps_mode = EpsMode::clamp});
    EXPECT_NEAR(clamped.get(0), 1e-34, 1e-39) << "dim " << dim;
  }
}

// A NaN row: whichever element holds the NaN, and whatever else the row holds (finite values,
// an Inf, values that eps would scale up in clamp mode), every output is NaN.
TEST_P(SpecialValues, NaNAnywhereMakesTheWholeRowNaN) {
  const std::initializer_list<float> rows[] = {
      {1.0f, kNaN}, {kNaN, 1.0f, 2.0f, 3.0f}, {kInf, kNaN, 1.0f, 0.0f}, {-kNaN, -kInf, 1e-30f}};
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : kDTypes) {
      for (const EpsMode mode : kModes) {
        for (const float eps : {1e-12f, 1e-6f, 0.0f}) {
          for (const std::initializer_list<float>& values : rows) {
            if (std::int64_t(values.size()) > dim) continue;
            const HostTensor out =
                normalize_row(dtype, values, dim, {.eps = eps, .eps_mode = mode});
            for (std::int64_t i = 0; i < dim; ++i) {
              ASSERT_TRUE(std::isnan(out.get(std::size_t(i))))
                  << describe(dtype, mode, dim) << " eps " << eps << " row starting "
                  << *values.begin() << ", element " << i << " is " << out.get(std::size_t(i));
            }
          }
          // The NaN last, after a full row of finite values.
          HostTensor input(dtype, std::size_t(dim));
          for (std::int64_t i = 0; i < dim; ++i) input.set(std::size_t(i), 0.5f);
          input.set(std::size_t(dim - 1), kNaN);
          const HostTensor out =
              run_l2_norm(device(), input, 1, dim, {.eps = eps, .eps_mode = mode});
          for (std::int64_t i = 0; i < dim; ++i) {
            ASSERT_TRUE(std::isnan(out.get(std::size_t(i))))
                << describe(dtype, mode, dim) << " eps " << eps << " NaN last, element " << i;
          }
        }
      }
    }
  }
}

// +-Inf and no NaN: the norm is Inf, so the Inf positions become NaN (Inf * 0) and the finite
// ones +-0 with their own sign.
TEST_P(SpecialValues, InfinityGivesNaNThereAndZeroElsewhere) {
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : kDTypes) {
      for (const EpsMode mode : kModes) {
        const HostTensor out = normalize_row(dtype, {kInf, 1.0f, -kInf, -2.0f},
                                             std::max<std::int64_t>(dim, 4), {.eps_mode = mode});
        const std::string what = describe(dtype, mode, dim);
        EXPECT_TRUE(std::isnan(out.get(0))) << what;
        EXPECT_TRUE(std::isnan(out.get(2))) << what;
        EXPECT_EQ(out.get(1), 0.0f) << what;
        EXPECT_FALSE(std::signbit(out.get(1))) << what;
        EXPECT_EQ(out.get(3), 0.0f) << what;
        EXPECT_TRUE(std::signbit(out.get(3))) << what;
        for (std::int64_t i = 4; i < dim; ++i) {
          ASSERT_EQ(out.get(std::size_t(i)), 0.0f) << what << " element " << i;
        }
      }
    }
  }
}

TEST_P(SpecialValues, ZeroRowWithEpsIsExactlyZero) {
  for (const std::int64_t dim : kDims) {
    for (const DType dtype : kDTypes) {
      for (const EpsMode mode : kModes) {
        const HostTensor out = normalize_row(dtype, {}, dim, {.eps = 1e-12f, .eps_mode = mode});
        for (std::int64_t i = 0; i < dim; ++i) {
          ASSERT_EQ(out.get(std::size_t(i)), 0.0f) << describe(dtype, mode, dim) << " " << i;
        }
      }
    }
  }
}

TEST_P(SpecialValues, ZeroRowWithZeroEpsIsNaNInBothModes) {
  for (const DType dtype : kDTypes) {
    for (const EpsMode mode : kModes) {
      const HostTensor out = normalize_row(dtype, {0.0f}, 64, {.eps = 0.0f, .eps_mode = mode});
      for (std::size_t i = 0; i < 64; ++i) {
        ASSERT_TRUE(std::isnan(out.get(i))) << describe(dtype, mode, 64) << " " << i;
      }
    }
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

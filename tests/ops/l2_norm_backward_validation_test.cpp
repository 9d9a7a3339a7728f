// Every error path of l2_norm_backward and l2_norm_backward_from_input: an invalid_argument Error
// whose message starts with "l2_norm_backward: " and names the offending values, raised before
// any backend runs.
#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/backends.hpp"

namespace l2norm::testing {
namespace {

class L2NormBackwardValidation : public OnEveryBackend {
 protected:
  static constexpr std::int64_t kRows = 4;
  static constexpr std::int64_t kDim = 8;

  void SetUp() override {
    OnEveryBackend::SetUp();
    if (IsSkipped()) return;
    storage_.emplace(device(), DType::f32, 4 * kRows * kDim);
    // Calls that pass validation run: their inputs are defined (compute-sanitizer initcheck).
    const std::vector<float> ones(static_cast<std::size_t>(4 * kRows * kDim), 1.0f);
    storage_->copy_from_host(ones.data(), ones.size() * sizeof(float));
  }

  // A [kRows, kDim] view of `dtype` at element `offset` of the shared storage (f32 elements).
  TensorView view(std::int64_t offset, DType dtype = DType::f32,
                  std::array<std::int64_t, 2> shape = {kRows, kDim},
                  std::array<std::int64_t, 2> strides = {kDim, 1}) const {
    auto* base = static_cast<float*>(storage_->data()) + offset;
    return TensorView(base, dtype, device(), shape, strides);
  }
  TensorView dy() const { return view(0); }
  TensorView y() const { return view(kRows * kDim); }
  TensorView dx() const { return view(2 * kRows * kDim); }
  TensorView rstd(std::int64_t count = kRows, std::int64_t stride = 1) const {
    const std::array<std::int64_t, 1> shape{count};
    const std::array<std::int64_t, 1> strides{stride};
    return TensorView(static_cast<float*>(storage_->data()) + 3 * kRows * kDim, DType::f32,
                      device(), shape, strides);
  }

  // Expects `call` to throw invalid_argument with a message starting with the op's name and
  // containing `fragment`.
  template <typename Call>
  void expect_invalid(Call&& call, const std::string& fragment) {
    expect_invalid_argument(std::forward<Call>(call), "l2_norm_backward", fragment);
  }

  // Expects both forms (rstd given, and from the input) to throw invalid_argument with a message
  // starting with the op's name and containing `fragment` (`fragment_from_input`, where given,
  // for the form from the input).
  void expect_both_invalid(const TensorView& dy, const TensorView& y, const TensorView& dx,
                           const L2NormOptions& options, const std::string& fragment,
                           const std::string& fragment_from_input = "") {
    CommandEncoder encoder(device());
    expect_invalid([&] { l2_norm_backward(encoder, dy, y, rstd(), dx, options); }, fragment);
    const std::string input_fragment = fragment_from_input.empty() ? fragment : fragment_from_input;
    expect_invalid([&] { l2_norm_backward_from_input(encoder, dy, y, dx, options); },
                   input_fragment);
    EXPECT_TRUE(encoder.recorded().empty());
  }

  std::optional<Buffer> storage_;
};

TEST_P(L2NormBackwardValidation, ShapesMustMatch) {
  expect_both_invalid(dy(), view(kRows * kDim, DType::f32, {kRows, kDim / 2}, {kDim / 2, 1}), dx(),
                      {}, "dy shape [4, 8] and y shape [4, 4] differ",
                      "dy shape [4, 8] and x shape [4, 4] differ");
  expect_both_invalid(dy(), y(), view(2 * kRows * kDim, DType::f32, {2, kDim}, {kDim, 1}), {},
                      "dy shape [4, 8] and dx shape [2, 8] differ");
}

TEST_P(L2NormBackwardValidation, DimZero) {
  const TensorView empty_dim = view(0, DType::f32, {kRows, 0}, {1, 1});
  expect_both_invalid(empty_dim, view(kRows * kDim, DType::f32, {kRows, 0}, {1, 1}),
                      view(2 * kRows * kDim, DType::f32, {kRows, 0}, {1, 1}), {},
                      "dim is 0 (shape [4, 0])");
}

TEST_P(L2NormBackwardValidation, UnsupportedDTypeCodes) {
  const auto bogus = static_cast<DType>(7);
  expect_both_invalid(view(0, bogus), y(), dx(), {}, "dy has unsupported dtype code 7");
  expect_both_invalid(dy(), view(kRows * kDim, bogus), dx(), {}, "y has unsupported dtype code 7",
                      "x has unsupported dtype code 7");
  expect_both_invalid(dy(), y(), view(2 * kRows * kDim, bogus), {},
                      "dx has unsupported dtype code 7");
}

TEST_P(L2NormBackwardValidation, BadOptions) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  expect_both_invalid(dy(), y(), dx(), {.eps = -1e-6f},
                      "eps must be finite and >= 0, got -9.99999997e-07");
  expect_both_invalid(dy(), y(), dx(), {.eps = inf}, "eps must be finite and >= 0, got inf");
  expect_both_invalid(dy(), y(), dx(), {.eps = nan}, "eps must be finite");
  expect_both_invalid(dy(), y(), dx(), {.scale = inf}, "scale must be finite, got inf");
  expect_both_invalid(dy(), y(), dx(), {.eps_mode = static_cast<EpsMode>(5)},
                      "unknown eps_mode code 5");
}

TEST_P(L2NormBackwardValidation, UnwalkableViews) {
  expect_both_invalid(view(0, DType::f32, {kRows, kDim}, {kDim, 2}), y(), dx(), {},
                      "dy last-dim stride is 2, must be 1 (strides [8, 2])");
  expect_both_invalid(
      dy(), view(kRows * kDim + kDim * (kRows - 1), DType::f32, {kRows, kDim}, {-kDim, 1}), dx(),
      {}, "y stride -8 of dim 0 is negative", "x stride -8 of dim 0 is negative");
  // A bf16 view at an odd byte address.
  const TensorView odd(static_cast<char*>(storage_->data()) + 1, DType::bf16, device(),
                       {kRows, kDim});
  expect_both_invalid(dy(), y(), odd, {}, "dx pointer is not aligned to its 2-byte elements");
}

// Views whose extent overflows, and null pointers, are refused before anything runs, as l2_norm
// refuses them (its view-safety tests hold the same rules).
TEST_P(L2NormBackwardValidation, ExtentsAndNullPointers) {
  const TensorView huge_y = view(kRows * kDim, DType::f32, {kRows, kDim}, {1LL << 62, 1});
  expect_both_invalid(dy(), huge_y, dx(), {}, "y spans more than", "x spans more than");
  const TensorView huge_dx = view(2 * kRows * kDim, DType::f32, {kRows, kDim}, {1LL << 62, 1});
  expect_both_invalid(dy(), y(), huge_dx, {}, "dx spans more than");
  const TensorView null_dy(nullptr, DType::f32, device(), {kRows, kDim});
  expect_both_invalid(null_dy, y(), dx(), {}, "dy data pointer is null");
  CommandEncoder encoder(device());
  const std::array<std::int64_t, 1> shape{kRows};
  const std::array<std::int64_t, 1> huge_stride{1LL << 62};
  expect_invalid(
      [&] {
        l2_norm_backward(encoder, dy(), y(), TensorView(nullptr, DType::f32, device(), shape),
                         dx());
      },
      "rstd data pointer is null");
  expect_invalid(
      [&] {
        l2_norm_backward(encoder, dy(), y(),
                         TensorView(rstd().data(), DType::f32, device(), shape, huge_stride), dx());
      },
      "rstd spans more than");
  EXPECT_TRUE(encoder.recorded().empty());
}

TEST_P(L2NormBackwardValidation, DxRowsMustNotOverlap) {
  expect_both_invalid(dy(), y(), view(2 * kRows * kDim, DType::f32, {kRows, kDim}, {kDim / 2, 1}),
                      {}, "dx rows overlap each other (shape [4, 8], strides [4, 1])");
}

TEST_P(L2NormBackwardValidation, DxMayBeDyOnlyInPlaceWithOneDType) {
  expect_both_invalid(dy(), y(), view(kDim / 2), {}, "dx overlaps dy without being the same view");
  expect_both_invalid(dy(), y(), view(0, DType::bf16), {},
                      "dx is dy in place but their dtypes differ (dy f32, dx bf16)");
  expect_both_invalid(dy(), y(), y(), {}, "dx is y (only dy may be overwritten in place)",
                      "dx is x (only dy may be overwritten in place)");
  expect_both_invalid(dy(), y(), view(kRows * kDim + 1), {}, "dx overlaps y", "dx overlaps x");
}

TEST_P(L2NormBackwardValidation, Rstd) {
  CommandEncoder encoder(device());
  const auto call = [&](const TensorView& rstd_view) {
    return [&, rstd_view] { l2_norm_backward(encoder, dy(), y(), rstd_view, dx()); };
  };
  auto* rstd_base = static_cast<float*>(storage_->data()) + 3 * kRows * kDim;
  expect_invalid(call(TensorView(rstd_base, DType::bf16, device(), {kRows})),
                 "rstd dtype is bf16, must be f32");
  expect_invalid(call(rstd(kRows + 1)), "rstd shape [5] must be [rows] = [4]");
  expect_invalid(call(TensorView(rstd_base, DType::f32, device(), {kRows, 1})),
                 "rstd shape [4, 1] must be [rows] = [4]");
  expect_invalid(call(rstd(kRows, 0)),
                 "rstd stride 0 must be positive (0 only for one row; rows=4)");
  expect_invalid(call(TensorView(rstd_base + 3 * kRows, DType::f32, device(), {kRows}, {-1})),
                 "rstd stride -1 must be positive");
  expect_invalid(call(TensorView(static_cast<char*>(static_cast<void*>(rstd_base)) + 2, DType::f32,
                                 device(), {kRows})),
                 "rstd pointer is not aligned to its 4-byte elements");
  expect_invalid(call(TensorView(static_cast<float*>(storage_->data()) + 2 * kRows * kDim,
                                 DType::f32, device(), {kRows})),
                 "dx overlaps rstd");
  // Stride 0 is one value for one row.
  const TensorView one_row_dy = view(0, DType::f32, {1, kDim});
  const TensorView one_row_y = view(kRows * kDim, DType::f32, {1, kDim});
  const TensorView one_row_dx = view(2 * kRows * kDim, DType::f32, {1, kDim});
  const std::array<std::int64_t, 1> one{1}, zero{0};
  EXPECT_NO_THROW(l2_norm_backward(encoder, one_row_dy, one_row_y,
                                   TensorView(rstd_base, DType::f32, device(), one, zero),
                                   one_row_dx));
}

TEST_P(L2NormBackwardValidation, DevicesMustMatchTheEncoder) {
  const Device other = device().is_cpu() ? Device::cuda(0) : Device::cpu();
  const TensorView elsewhere(dx().data(), DType::f32, other, {kRows, kDim});
  expect_both_invalid(dy(), y(), elsewhere, {}, "dx is on " + other.name());
  CommandEncoder encoder(device());
  const TensorView rstd_elsewhere(rstd().data(), DType::f32, other, {kRows});
  expect_invalid([&] { l2_norm_backward(encoder, dy(), y(), rstd_elsewhere, dx()); },
                 "rstd is on " + other.name());
}

TEST_P(L2NormBackwardValidation, Prewarm) {
  try {
    prewarm_l2_norm_backward(device(), DType::f32, DType::f32, DType::f32, 0);
    ADD_FAILURE() << "no error for dim 0";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), "l2_norm_backward: prewarm: dim must be positive, got 0");
  }
  EXPECT_NO_THROW(prewarm_l2_norm_backward(device(), DType::bf16, DType::f32, DType::f16, 128,
                                           {.eps_mode = EpsMode::clamp}, true));
}

INSTANTIATE_TEST_SUITE_P(Backends, L2NormBackwardValidation,
                         ::testing::ValuesIn(all_test_devices()), device_param_name);

}  // namespace
}  // namespace l2norm::testing

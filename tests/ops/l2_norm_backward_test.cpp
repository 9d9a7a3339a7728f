// l2_norm_backward and l2_norm_backward_from_input on every backend: against the float64 analytic
// gradient within the budget of docs/DESIGN.md ("Backward"), against float64 central finite
// differences of the forward formula, over every dtype combination, both eps modes, scale, strided
// and misaligned views, in place, a dim sweep and long rows; bitwise determinism; the README's
// semantics table for the backward; every validation error.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "support/backends.hpp"
#include "support/backward.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

std::string name_of(DType dy, DType y, DType dx) {
  return "dy " + std::string(dtype_name(dy)) + " y " + std::string(dtype_name(y)) + " dx " +
         std::string(dtype_name(dx));
}

std::string name_of(const L2NormOptions& options, bool from_input) {
  return std::string(eps_mode_name(options.eps_mode)) + " eps " + std::to_string(options.eps) +
         " scale " + std::to_string(options.scale) + (from_input ? " from input" : " from output");
}

// The forward in float64 from the rounded x: per row the inverse norm r and y = x * r (scale 1).
struct Forward {
  std::vector<double> y;
  std::vector<double> r;
  std::vector<double> norm;
};

Forward forward_f64(const HostTensor& x, std::int64_t rows, std::int64_t dim,
                    const L2NormOptions& options) {
  Forward forward{std::vector<double>(std::size_t(rows * dim)),
                  std::vector<double>(std::size_t(rows)), std::vector<double>(std::size_t(rows))};
  for (std::int64_t row = 0; row < rows; ++row) {
    double sum = 0.0;
    for (std::int64_t j = 0; j < dim; ++j) {
      const double value = x.get(std::size_t(row * dim + j));
      sum += value * value;
    }
    const double norm = std::sqrt(sum);
    const double eps = options.eps;
    const double r = options.eps_mode == EpsMode::add ? 1.0 / std::sqrt(sum + eps)
                                                      : 1.0 / (norm < eps ? eps : norm);
    forward.r[std::size_t(row)] = r;
    forward.norm[std::size_t(row)] = norm;
    for (std::int64_t j = 0; j < dim; ++j) {
      forward.y[std::size_t(row * dim + j)] = double(x.get(std::size_t(row * dim + j))) * r;
    }
  }
  return forward;
}

// y rounded into `dtype` and r rounded to f32: what a forward pass saves.
HostTensor rounded_y(const Forward& forward, DType dtype) {
  HostTensor y(dtype, forward.y.size());
  for (std::size_t i = 0; i < forward.y.size(); ++i) y.set(i, float(forward.y[i]));
  return y;
}

std::vector<float> rounded_rstd(const Forward& forward) {
  std::vector<float> rstd(forward.r.size());
  for (std::size_t i = 0; i < rstd.size(); ++i) rstd[i] = float(forward.r[i]);
  return rstd;
}

// The analytic gradient and each element's budget (docs/DESIGN.md "Backward"):
//   dx = scale * r * (dy - (dy . y) y), or scale * r * dy for clamped rows,
//   |dx - reference| <= c * (ceil(log2 dim) + 4) * 2^-24 * |scale| * r * (|dy_i| + |y_i| sum|dy_j
//   y_j|)
//                       + 1 ulp of dx's dtype at the reference,
// with c = 2 from the output and c = 4 from the input (r and y are recomputed in f32 there). NaN
// rows expect NaN everywhere.
struct Expected {
  std::vector<double> dx;
  std::vector<double> tolerance;
};

Expected analytic(const HostTensor& dy, const std::vector<double>& y, const std::vector<double>& r,
                  const std::vector<bool>& clamped, std::int64_t rows, std::int64_t dim,
                  const L2NormOptions& options, DType dx_dtype, double c) {
  Expected expected{std::vector<double>(std::size_t(rows * dim)),
                    std::vector<double>(std::size_t(rows * dim))};
  const double levels = std::ceil(std::log2(double(std::max<std::int64_t>(dim, 1)))) + 4.0;
  const double scale = options.scale;
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::size_t base = std::size_t(row * dim);
    double dot = 0.0;
    double magnitude = 0.0;
    for (std::int64_t j = 0; j < dim; ++j) {
      dot += double(dy.get(base + std::size_t(j))) * y[base + std::size_t(j)];
      magnitude += std::fabs(double(dy.get(base + std::size_t(j))) * y[base + std::size_t(j)]);
    }
    const double factor = r[std::size_t(row)];
    const bool row_clamped = clamped[std::size_t(row)];
    for (std::int64_t j = 0; j < dim; ++j) {
      const std::size_t i = base + std::size_t(j);
      const double g = dy.get(i);
      const double value = scale * factor * (row_clamped ? g : g - dot * y[i]);
      const double terms = std::fabs(scale) * factor *
                           (std::fabs(g) + (row_clamped ? 0.0 : std::fabs(y[i]) * magnitude));
      expected.dx[i] = std::isfinite(factor) && std::isfinite(dot) ? value : double(kNaN);
      expected.tolerance[i] = c * levels * 0x1p-24 * terms + ulp_at(value, dx_dtype);
    }
  }
  return expected;
}

// From the output: clamped rows as the library decides them, rstd >= 1 / eps in f32.
Expected expected_from_output(const HostTensor& dy, const HostTensor& y,
                              const std::vector<float>& rstd, std::int64_t rows, std::int64_t dim,
                              const L2NormOptions& options, DType dx_dtype) {
  std::vector<double> y_values(y.count());
  for (std::size_t i = 0; i < y.count(); ++i) y_values[i] = y.get(i);
  std::vector<double> r(rstd.begin(), rstd.end());
  std::vector<bool> clamped(rstd.size(), false);
  const float threshold = 1.0f / options.eps;
  for (std::size_t row = 0; row < rstd.size(); ++row) {
    clamped[row] = options.eps_mode == EpsMode::clamp && rstd[row] >= threshold;
  }
  return analytic(dy, y_values, r, clamped, rows, dim, options, dx_dtype, 2.0);
}

// From the input: the exact gradient of the forward at x. Rows whose norm is within 1e-4 of eps
// (clamp mode) may be decided either way by an f32 norm: their budget admits both branches.
Expected expected_from_input(const HostTensor& dy, const HostTensor& x, std::int64_t rows,
                             std::int64_t dim, const L2NormOptions& options, DType dx_dtype) {
  const Forward forward = forward_f64(x, rows, dim, options);
  std::vector<bool> clamped(std::size_t(rows), false);
  for (std::size_t row = 0; row < clamped.size(); ++row) {
    clamped[row] = options.eps_mode == EpsMode::clamp && forward.norm[row] <= options.eps;
  }
  Expected expected =
      analytic(dy, forward.y, forward.r, clamped, rows, dim, options, dx_dtype, 4.0);
  if (options.eps_mode == EpsMode::clamp) {
    std::vector<bool> other(clamped.size());
    for (std::size_t row = 0; row < clamped.size(); ++row) other[row] = !clamped[row];
    const Expected flipped =
        analytic(dy, forward.y, forward.r, other, rows, dim, options, dx_dtype, 4.0);
    for (std::size_t row = 0; row < clamped.size(); ++row) {
      if (std::fabs(forward.norm[row] - options.eps) > 1e-4 * options.eps) continue;
      for (std::int64_t j = 0; j < dim; ++j) {
        const std::size_t i = row * std::size_t(dim) + std::size_t(j);
        expected.tolerance[i] += std::fabs(expected.dx[i] - flipped.dx[i]);
      }
    }
  }
  return expected;
}

// Every element within its budget (NaN where NaN is expected, and only there). Returns the worst
// error as a fraction of the budget.
double expect_close(const HostTensor& got, const Expected& expected, const std::string& what) {
  double worst = 0.0;
  std::size_t worst_index = 0;
  std::size_t nan_mismatches = 0;
  for (std::size_t i = 0; i < expected.dx.size(); ++i) {
    const double value = got.get(i);
    if (std::isnan(expected.dx[i]) || std::isnan(value)) {
      if (std::isnan(expected.dx[i]) != std::isnan(value) && nan_mismatches++ == 0) {
        ADD_FAILURE() << what << ": element " << i << " is " << value << ", expected "
                      << expected.dx[i];
      }
      continue;
    }
    const double ratio = std::fabs(value - expected.dx[i]) / expected.tolerance[i];
    if (!(ratio <= worst)) {
      worst = ratio;
      worst_index = i;
    }
  }
  EXPECT_EQ(nan_mismatches, 0u) << what;
  EXPECT_LE(worst, 1.0) << what << ": element " << worst_index << " is " << got.get(worst_index)
                        << ", expected " << expected.dx[worst_index] << " within "
                        << expected.tolerance[worst_index];
  return worst;
}

// x with rows of several magnitudes (norms from about 0.03 to 300 times sqrt(dim / 3)), so clamp
// mode with eps near 1 clamps some rows and not others.
HostTensor spread_rows(DType dtype, std::int64_t rows, std::int64_t dim, std::uint64_t seed) {
  const HostTensor base = random_tensor(DType::f32, std::size_t(rows * dim), seed, 1.0f);
  HostTensor x(dtype, base.count());
  for (std::int64_t row = 0; row < rows; ++row) {
    const float magnitude = std::pow(10.0f, float(row % 5) - 1.5f);
    for (std::int64_t j = 0; j < dim; ++j) {
      const std::size_t i = std::size_t(row * dim + j);
      x.set(i, base.get(i) * magnitude);
    }
  }
  return x;
}

// Checks both forms of one case against the analytic gradient. Returns the from-output result.
HostTensor check_case(const Device& device, DType dy_dtype, DType y_dtype, DType dx_dtype,
                      std::int64_t rows, std::int64_t dim, const L2NormOptions& options,
                      std::uint64_t seed, const std::string& what) {
  const HostTensor x = spread_rows(y_dtype, rows, dim, seed);
  const HostTensor dy = random_tensor(dy_dtype, std::size_t(rows * dim), seed + 1);
  const Forward forward = forward_f64(x, rows, dim, options);
  const HostTensor y = rounded_y(forward, y_dtype);
  const std::vector<float> rstd = rounded_rstd(forward);
  const HostTensor from_output = run_backward(device, {dy, y, &rstd, dx_dtype, rows, dim, options});
  expect_close(from_output, expected_from_output(dy, y, rstd, rows, dim, options, dx_dtype),
               what + " " + name_of(options, false));
  const HostTensor from_input =
      run_backward(device, {dy, x, nullptr, dx_dtype, rows, dim, options});
  expect_close(from_input, expected_from_input(dy, x, rows, dim, options, dx_dtype),
               what + " " + name_of(options, true));
  return from_output;
}

class L2NormBackward : public OnEveryBackend {};

TEST_P(L2NormBackward, EveryDTypeCombinationBothModesAndScale) {
  for (const DType dy : kDTypes) {
    for (const DType y : kDTypes) {
      for (const DType dx : kDTypes) {
        for (const EpsMode mode : kModes) {
          for (const float scale : {1.0f, 0.0883883476f}) {
            const L2NormOptions options{
                .eps = mode == EpsMode::add ? 1e-6f : 1.0f, .scale = scale, .eps_mode = mode};
            check_case(device(), dy, y, dx, 10, 72, options, 11, name_of(dy, y, dx));
          }
        }
      }
    }
  }
}

TEST_P(L2NormBackward, DimSweep) {
  for (std::int64_t dim = 1; dim <= 300; ++dim) {
    check_case(device(), DType::f32, DType::f32, DType::f32, 3, dim, {}, std::uint64_t(dim),
               "f32 dim " + std::to_string(dim));
    check_case(device(), DType::bf16, DType::bf16, DType::bf16, 3, dim,
               {.eps = 1.0f, .eps_mode = EpsMode::clamp}, std::uint64_t(dim),
               "bf16 dim " + std::to_string(dim));
  }
}

TEST_P(L2NormBackward, LongRows) {
  for (const std::int64_t dim : {std::int64_t{16384}, std::int64_t{20000}, std::int64_t{70000}}) {
    for (const EpsMode mode : kModes) {
      const L2NormOptions options{.eps = mode == EpsMode::add ? 1e-6f : 1.0f, .eps_mode = mode};
      check_case(device(), DType::f32, DType::f32, DType::f32, 3, dim, options, 5,
                 "f32 dim " + std::to_string(dim));
      check_case(device(), DType::bf16, DType::bf16, DType::f32, 2, dim,
                 {.eps = options.eps, .scale = 0.5f, .eps_mode = mode}, 6,
                 "bf16 dim " + std::to_string(dim));
    }
  }
}

// Few long rows, the shapes that spread one row over many blocks on a GPU (3 x 300000: 37 tiles
// a row; 8 x 2^20: 128 tiles a row, in two waves of co-resident blocks for f32): every dtype
// combination at 3 x 300000, each with one of the four (eps mode, scale) pairs in turn, and a
// set of combinations at 8 x 2^20 that puts each dtype in each place. Clamp mode's eps of 30
// clamps the rows of the smallest magnitude (norm about 10) and no other.
TEST_P(L2NormBackward, FewLongRowsEveryDTypeCombination) {
  const auto options_of = [](int index) {
    const EpsMode mode = kModes[index % 2];
    return L2NormOptions{.eps = mode == EpsMode::add ? 1e-6f : 30.0f,
                         .scale = index / 2 % 2 == 0 ? 1.0f : 0.0883883476f,
                         .eps_mode = mode};
  };
  int index = 0;
  for (const DType dy : kDTypes) {
    for (const DType y : kDTypes) {
      for (const DType dx : kDTypes) {
        check_case(device(), dy, y, dx, 3, 300000, options_of(index), 70 + std::uint64_t(index),
                   name_of(dy, y, dx) + " 3 x 300000");
        ++index;
      }
    }
  }
  struct Triple {
    DType dy, y, dx;
  };
  index = 0;
  for (const Triple t :
       {Triple{DType::f32, DType::f32, DType::f32}, Triple{DType::bf16, DType::bf16, DType::bf16},
        Triple{DType::f16, DType::f16, DType::f16}, Triple{DType::f32, DType::bf16, DType::f16},
        Triple{DType::bf16, DType::f16, DType::f32}, Triple{DType::f16, DType::f32, DType::bf16}}) {
    check_case(device(), t.dy, t.y, t.dx, 8, std::int64_t{1} << 20, options_of(index),
               90 + std::uint64_t(index), name_of(t.dy, t.y, t.dx) + " 8 x 2^20");
    ++index;
  }
}

// dL/dx for L = sum(dy * l2_norm(x)) by float64 central differences of the forward formula, with
// eps far above the step, against both forms.
TEST_P(L2NormBackward, MatchesFiniteDifferencesOfTheForward) {
  const double step = 1e-6;
  for (const EpsMode mode : kModes) {
    for (const std::int64_t dim : {1, 2, 3, 5, 8, 17, 33}) {
      const std::int64_t rows = 4;
      const L2NormOptions options{.eps = 0.25f, .scale = 1.5f, .eps_mode = mode};
      // Rows 0 to 2 have norms of at least 0.5 (every element at least 0.5 away from zero); row 3
      // at most 0.14, which clamp mode clamps: no row is near the clamp's edge.
      HostTensor x = random_tensor(DType::f32, std::size_t(rows * dim), 40 + std::uint64_t(dim));
      const float shrink = 0.07f / std::sqrt(float(dim));
      for (std::int64_t i = 0; i < rows * dim; ++i) {
        const float value = x.get(std::size_t(i));
        x.set(std::size_t(i), i >= 3 * dim    ? value * shrink
                              : value >= 0.0f ? value + 0.5f
                                              : value - 0.5f);
      }
      const HostTensor dy = random_tensor(DType::f32, x.count(), 50 + std::uint64_t(dim));
      const auto loss = [&](std::int64_t row, const std::vector<double>& values) {
        double sum = 0.0;
        for (const double value : values) sum += value * value;
        const double eps = options.eps;
        const double denominator =
            mode == EpsMode::add ? std::sqrt(sum + eps) : std::max(std::sqrt(sum), eps);
        double total = 0.0;
        for (std::int64_t j = 0; j < dim; ++j) {
          total += double(dy.get(std::size_t(row * dim + j))) * options.scale *
                   values[std::size_t(j)] / denominator;
        }
        return total;
      };
      std::vector<double> numeric(x.count());
      for (std::int64_t row = 0; row < rows; ++row) {
        std::vector<double> values(static_cast<std::size_t>(dim));
        for (std::int64_t j = 0; j < dim; ++j)
          values[std::size_t(j)] = x.get(std::size_t(row * dim + j));
        for (std::int64_t j = 0; j < dim; ++j) {
          std::vector<double> plus = values, minus = values;
          plus[std::size_t(j)] += step;
          minus[std::size_t(j)] -= step;
          numeric[std::size_t(row * dim + j)] = (loss(row, plus) - loss(row, minus)) / (2 * step);
        }
      }
      const Forward forward = forward_f64(x, rows, dim, options);
      const HostTensor y = rounded_y(forward, DType::f32);
      const std::vector<float> rstd = rounded_rstd(forward);
      const HostTensor from_output =
          run_backward(device(), {dy, y, &rstd, DType::f32, rows, dim, options});
      const HostTensor from_input =
          run_backward(device(), {dy, x, nullptr, DType::f32, rows, dim, options});
      for (std::size_t i = 0; i < numeric.size(); ++i) {
        const double tolerance = 1e-5 * std::max(1.0, std::fabs(numeric[i]));
        EXPECT_NEAR(from_output.get(i), numeric[i], tolerance)
            << eps_mode_name(mode) << " dim " << dim << " element " << i << " from output";
        EXPECT_NEAR(from_input.get(i), numeric[i], tolerance)
            << eps_mode_name(mode) << " dim " << dim << " element " << i << " from input";
      }
    }
  }
}

TEST_P(L2NormBackward, InPlaceOverDy) {
  for (const DType dtype : kDTypes) {
    const std::int64_t rows = 7, dim = 200;
    const HostTensor x = spread_rows(dtype, rows, dim, 3);
    const HostTensor dy = random_tensor(dtype, std::size_t(rows * dim), 4);
    const Forward forward = forward_f64(x, rows, dim, {});
    const HostTensor y = rounded_y(forward, dtype);
    const std::vector<float> rstd = rounded_rstd(forward);
    const BackwardRun out_of_place{dy, y, &rstd, dtype, rows, dim, {}};
    BackwardRun in_place = out_of_place;
    in_place.in_place = true;
    EXPECT_TRUE(
        run_backward(device(), in_place).bitwise_equal(run_backward(device(), out_of_place)))
        << dtype_name(dtype);
    BackwardRun from_input{dy, x, nullptr, dtype, rows, dim, {}};
    const HostTensor expected = run_backward(device(), from_input);
    from_input.in_place = true;
    EXPECT_TRUE(run_backward(device(), from_input).bitwise_equal(expected)) << dtype_name(dtype);
  }
}

TEST_P(L2NormBackward, SameBitsEveryRunAndThreadCount) {
  const std::int64_t rows = 300, dim = 1000;
  const HostTensor x = spread_rows(DType::bf16, rows, dim, 8);
  const HostTensor dy = random_tensor(DType::f32, std::size_t(rows * dim), 9);
  const Forward forward = forward_f64(x, rows, dim, {});
  const HostTensor y = rounded_y(forward, DType::bf16);
  const std::vector<float> rstd = rounded_rstd(forward);
  for (const bool from_input : {false, true}) {
    const BackwardRun run{dy,  from_input ? x : y, from_input ? nullptr : &rstd, DType::bf16, rows,
                          dim, {.scale = 2.0f}};
    const HostTensor first = run_backward(device(), run);
    EXPECT_TRUE(run_backward(device(), run).bitwise_equal(first));
    if (device().is_cpu()) {
      for (const int threads : {1, 2, 3, 8}) {
        set_cpu_thread_count(threads);
        EXPECT_TRUE(run_backward(device(), run).bitwise_equal(first)) << threads << " threads";
      }
      set_cpu_thread_count(0);
    }
  }
}

// ---- strided views and misaligned pointers ----

// Gathers the rows of a view over `storage` into a contiguous [rows, dim] tensor.
HostTensor gather(const HostTensor& storage, const std::vector<std::int64_t>& shape,
                  const StorageView& view, std::vector<bool>* touched = nullptr) {
  const std::int64_t dim = shape.back();
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  HostTensor rows_of(storage.dtype(), std::size_t(rows * dim));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t rest = r, start = view.offset;
    for (int d = int(shape.size()) - 2; d >= 0; --d) {
      start += rest % shape[std::size_t(d)] * view.strides[std::size_t(d)];
      rest /= shape[std::size_t(d)];
    }
    for (std::int64_t j = 0; j < dim; ++j) {
      rows_of.set(std::size_t(r * dim + j), storage.get(std::size_t(start + j)));
      if (touched != nullptr) (*touched)[std::size_t(start + j)] = true;
    }
  }
  return rows_of;
}

class L2NormBackwardViews : public OnEveryBackend {
 protected:
  // Runs the backward with dy, y (or x) and dx as views over storages of `storage` elements (dx
  // over dy's storage when in place), rstd contiguous; checks every row against the contiguous
  // reference and every element outside dx unchanged.
  void check(DType dtype, std::int64_t storage, const std::vector<std::int64_t>& shape,
             const StorageView& dy_spec, const StorageView& y_spec, const StorageView& dx_spec,
             bool in_place, bool from_input, const std::string& what) {
    const std::int64_t dim = shape.back();
    std::int64_t rows = 1;
    for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
    const L2NormOptions options{.scale = 0.75f};
    const HostTensor dy_storage = random_tensor(dtype, std::size_t(storage), 21);
    const HostTensor x_storage = random_tensor(dtype, std::size_t(storage), 22);
    // y storage: x's rows normalized in float64 where the view has them (the rest random).
    const HostTensor x_rows = gather(x_storage, shape, y_spec);
    const Forward forward = forward_f64(x_rows, rows, dim, options);
    HostTensor y_storage = x_storage;
    {
      const HostTensor y_rows = rounded_y(forward, dtype);
      for (std::int64_t r = 0; r < rows; ++r) {
        std::int64_t rest = r, start = y_spec.offset;
        for (int d = int(shape.size()) - 2; d >= 0; --d) {
          start += rest % shape[std::size_t(d)] * y_spec.strides[std::size_t(d)];
          rest /= shape[std::size_t(d)];
        }
        for (std::int64_t j = 0; j < dim; ++j) {
          y_storage.set(std::size_t(start + j), y_rows.get(std::size_t(r * dim + j)));
        }
      }
    }
    const std::vector<float> rstd = rounded_rstd(forward);
    HostTensor dx_storage = in_place ? dy_storage : random_tensor(dtype, std::size_t(storage), 23);
    const HostTensor dx_before = dx_storage;

    Buffer dy_buffer(device(), dtype, storage);
    Buffer y_buffer(device(), dtype, storage);
    Buffer dx_buffer(device(), dtype, in_place ? 0 : storage);
    Buffer rstd_buffer(device(), DType::f32, rows);
    dy_buffer.copy_from_host(dy_storage.data(), dy_storage.bytes());
    y_buffer.copy_from_host((from_input ? x_storage : y_storage).data(), y_storage.bytes());
    if (!in_place) dx_buffer.copy_from_host(dx_storage.data(), dx_storage.bytes());
    rstd_buffer.copy_from_host(rstd.data(), rstd.size() * sizeof(float));
    const Buffer& target = in_place ? dy_buffer : dx_buffer;
    const auto view = [&](const Buffer& buffer, const StorageView& spec) {
      auto* base =
          static_cast<std::byte*>(buffer.data()) + spec.offset * std::int64_t(dtype_size(dtype));
      return TensorView(base, dtype, device(), shape, spec.strides);
    };
    CommandEncoder encoder(device());
    if (from_input) {
      l2_norm_backward_from_input(encoder, view(dy_buffer, dy_spec), view(y_buffer, y_spec),
                                  view(target, dx_spec), options);
    } else {
      l2_norm_backward(encoder, view(dy_buffer, dy_spec), view(y_buffer, y_spec),
                       rstd_buffer.view(), view(target, dx_spec), options);
    }
    encoder.wait();
    target.copy_to_host(dx_storage.data(), dx_storage.bytes());

    std::vector<bool> written(std::size_t(storage), false);
    const HostTensor dx_rows = gather(dx_storage, shape, dx_spec, &written);
    const HostTensor dy_rows = gather(dy_storage, shape, dy_spec);
    const Expected expected = from_input
                                  ? expected_from_input(dy_rows, x_rows, rows, dim, options, dtype)
                                  : expected_from_output(dy_rows, gather(y_storage, shape, y_spec),
                                                         rstd, rows, dim, options, dtype);
    expect_close(dx_rows, expected, what + (from_input ? " from input" : " from output"));
    std::size_t clobbered = 0;
    const HostTensor& before = in_place ? dy_storage : dx_before;
    for (std::size_t i = 0; i < std::size_t(storage); ++i) {
      if (written[i]) continue;
      clobbered += std::bit_cast<std::uint32_t>(before.get(i)) !=
                   std::bit_cast<std::uint32_t>(dx_storage.get(i));
    }
    EXPECT_EQ(clobbered, 0u) << what << ": elements outside dx changed";
  }
};

TEST_P(L2NormBackwardViews, QAndKSlicesOfAPackedProjection) {
  // Gradients of a qkv projection [T, 3, H, D]: dy of q is [:, 0] of one packed gradient buffer,
  // y is [:, 0] of the packed forward output, dx goes to [:, 0] of a third; k ([:, 1]) in place.
  constexpr std::int64_t T = 37, H = 4, D = 128;
  const std::vector<std::int64_t> shape{T, H, D};
  const std::vector<std::int64_t> packed{3 * H * D, D, 1};
  for (const DType dtype : kDTypes) {
    for (const bool from_input : {false, true}) {
      check(dtype, T * 3 * H * D, shape, {0, packed}, {0, packed}, {0, packed}, false, from_input,
            std::string("q ") + std::string(dtype_name(dtype)));
      check(dtype, T * 3 * H * D, shape, {H * D, packed}, {H * D, packed}, {H * D, packed}, true,
            from_input, std::string("k in place ") + std::string(dtype_name(dtype)));
    }
  }
}

TEST_P(L2NormBackwardViews, PermutedHeadsRankFour) {
  // Storage [B, H, T, D] viewed as [B, T, H, D]: no two leading dims merge (outer rank 3).
  constexpr std::int64_t B = 2, T = 5, H = 3, D = 96;
  const std::vector<std::int64_t> shape{B, T, H, D};
  const std::vector<std::int64_t> permuted{H * T * D, D, T * D, 1};
  const std::vector<std::int64_t> contiguous{T * H * D, H * D, D, 1};
  for (const bool from_input : {false, true}) {
    check(DType::bf16, B * H * T * D, shape, {0, permuted}, {0, permuted}, {0, permuted}, false,
          from_input, "rank 4 bf16");
    check(DType::f32, B * H * T * D, shape, {0, contiguous}, {0, permuted}, {0, contiguous}, false,
          from_input, "rank 4 f32, y permuted");
  }
}

TEST_P(L2NormBackwardViews, MisalignedPointers) {
  for (const DType dtype : kDTypes) {
    for (std::int64_t offset = 1; offset <= 7; ++offset) {
      for (const std::int64_t dim : {std::int64_t{7}, std::int64_t{128}, std::int64_t{20000}}) {
        const std::int64_t rows = 3;
        const std::vector<std::int64_t> contiguous{dim, 1};
        const std::string what = std::string(dtype_name(dtype)) + " offset " +
                                 std::to_string(offset) + " dim " + std::to_string(dim);
        check(dtype, rows * dim + 8, {rows, dim}, {offset, contiguous}, {8 - offset, contiguous},
              {(offset + 3) % 8, contiguous}, false, offset % 2 == 0, what);
        check(dtype, rows * dim + 8, {rows, dim}, {offset, contiguous}, {0, contiguous},
              {offset, contiguous}, true, offset % 2 == 1, "in place " + what);
      }
    }
  }
}

// Few long rows (spread over many blocks on a GPU) as misaligned, strided and permuted views, in
// place and not.
TEST_P(L2NormBackwardViews, FewLongRowsMisalignedAndStrided) {
  const std::int64_t rows = 3, dim = 300000;
  const std::vector<std::int64_t> contiguous{dim, 1};
  for (const DType dtype : kDTypes) {
    for (const std::int64_t offset : {std::int64_t{1}, std::int64_t{4}}) {
      const std::string what = std::string(dtype_name(dtype)) + " offset " +
                               std::to_string(offset) + " dim " + std::to_string(dim);
      check(dtype, rows * dim + 8, {rows, dim}, {offset, contiguous}, {8 - offset, contiguous},
            {(offset + 3) % 8, contiguous}, false, offset == 1, what);
      check(dtype, rows * dim + 8, {rows, dim}, {offset, contiguous}, {0, contiguous},
            {offset, contiguous}, true, offset != 1, "in place " + what);
    }
  }
  // Row stride dim + 3: 2-element vectors at most.
  const std::vector<std::int64_t> padded{dim + 3, 1};
  for (const bool from_input : {false, true}) {
    check(DType::f16, rows * (dim + 3), {rows, dim}, {0, padded}, {0, padded}, {0, padded}, false,
          from_input, "row stride dim+3, dim " + std::to_string(dim));
  }
  // Storage [2, 3, D] viewed as [3, 2, D]: the leading dims do not merge.
  constexpr std::int64_t D = 70000;
  const std::vector<std::int64_t> shape{3, 2, D};
  const std::vector<std::int64_t> permuted{D, 3 * D, 1};
  for (const bool from_input : {false, true}) {
    check(DType::bf16, 6 * D, shape, {0, permuted}, {0, permuted}, {0, permuted}, false, from_input,
          "permuted rank 3 bf16, dim " + std::to_string(D));
  }
}

TEST_P(L2NormBackwardViews, RowStrideNotAMultipleOfTheVectorWidth) {
  for (const std::int64_t dim : {std::int64_t{8}, std::int64_t{128}, std::int64_t{1000}}) {
    const std::int64_t rows = 20, stride = dim + 3;
    const std::vector<std::int64_t> strides{stride, 1};
    check(DType::f16, rows * stride, {rows, dim}, {0, strides}, {0, strides}, {0, strides}, false,
          false, "row stride dim+3, dim " + std::to_string(dim));
  }
}

TEST_P(L2NormBackwardViews, StridedRstd) {
  const std::int64_t rows = 6, dim = 32;
  const HostTensor x = spread_rows(DType::f32, rows, dim, 31);
  const HostTensor dy = random_tensor(DType::f32, std::size_t(rows * dim), 32);
  const Forward forward = forward_f64(x, rows, dim, {});
  const HostTensor y = rounded_y(forward, DType::f32);
  const std::vector<float> rstd = rounded_rstd(forward);
  std::vector<float> spaced(std::size_t(rows * 3), kNaN);
  for (std::int64_t row = 0; row < rows; ++row)
    spaced[std::size_t(row * 3)] = rstd[std::size_t(row)];
  Buffer dy_buffer(device(), DType::f32, rows * dim), y_buffer(device(), DType::f32, rows * dim);
  Buffer dx_buffer(device(), DType::f32, rows * dim), rstd_buffer(device(), DType::f32, rows * 3);
  dy_buffer.copy_from_host(dy.data(), dy.bytes());
  y_buffer.copy_from_host(y.data(), y.bytes());
  rstd_buffer.copy_from_host(spaced.data(), spaced.size() * sizeof(float));
  CommandEncoder encoder(device());
  const std::array<std::int64_t, 1> rstd_shape{rows};
  const std::array<std::int64_t, 1> rstd_strides{3};
  l2_norm_backward(encoder, dy_buffer.view({rows, dim}), y_buffer.view({rows, dim}),
                   TensorView(rstd_buffer.data(), DType::f32, device(), rstd_shape, rstd_strides),
                   dx_buffer.view({rows, dim}));
  encoder.wait();
  HostTensor dx(DType::f32, std::size_t(rows * dim));
  dx_buffer.copy_to_host(dx.data(), dx.bytes());
  expect_close(dx, expected_from_output(dy, y, rstd, rows, dim, {}, DType::f32), "rstd stride 3");
}

TEST_P(L2NormBackwardViews, EmptyBatchIsANoOp) {
  Buffer buffer(device(), DType::f32, 8);
  CommandEncoder encoder(device());
  const TensorView empty(buffer.data(), DType::f32, device(), {0, 8});
  const TensorView no_rstd(buffer.data(), DType::f32, device(), {0});
  l2_norm_backward(encoder, empty, empty, no_rstd, empty);
  l2_norm_backward_from_input(encoder, empty, empty, empty);
  EXPECT_TRUE(encoder.recorded().empty());
}

// ---- the README's semantics table for the backward ----

class L2NormBackwardSemantics : public OnEveryBackend {
 protected:
  // One row of dy and y (or x) values, padded with zeros to dim, through one form.
  HostTensor row(DType dtype, std::vector<float> dy_values, std::vector<float> y_values,
                 std::optional<float> rstd, std::int64_t dim, const L2NormOptions& options) {
    HostTensor dy(dtype, std::size_t(dim)), y(dtype, std::size_t(dim));
    for (std::int64_t i = 0; i < dim; ++i) {
      dy.set(std::size_t(i), i < std::int64_t(dy_values.size()) ? dy_values[std::size_t(i)] : 0.0f);
      y.set(std::size_t(i), i < std::int64_t(y_values.size()) ? y_values[std::size_t(i)] : 0.0f);
    }
    const std::vector<float> rstd_values{rstd.value_or(0.0f)};
    return run_backward(device(), {dy, y, rstd ? &rstd_values : nullptr, dtype, 1, dim, options});
  }
};

// Row lengths that reach every CUDA kernel: the rows kernel, and the split kernel with a row over
// 3 (20000) and 37 (300000) exchanging blocks.
constexpr std::int64_t kSemanticsDims[] = {2, 300, 20000, 300000};

TEST_P(L2NormBackwardSemantics, ZeroRowWithEpsHasTheFiniteGradient) {
  for (const std::int64_t dim : kSemanticsDims) {
    for (const DType dtype : kDTypes) {
      for (const EpsMode mode : kModes) {
        const L2NormOptions options{.eps = 0.25f, .scale = 3.0f, .eps_mode = mode};
        // add: dy / sqrt(eps) = 2 dy; clamp: dy / eps = 4 dy; times scale.
        const float factor = mode == EpsMode::add ? 2.0f : 4.0f;
        const HostTensor from_output = row(dtype, {1.0f, -0.5f}, {}, factor, dim, options);
        const HostTensor from_input = row(dtype, {1.0f, -0.5f}, {}, std::nullopt, dim, options);
        for (const HostTensor* dx : {&from_output, &from_input}) {
          EXPECT_EQ(dx->get(0), 3.0f * factor) << dtype_name(dtype) << " dim " << dim;
          EXPECT_EQ(dx->get(1), -1.5f * factor) << dtype_name(dtype) << " dim " << dim;
          if (dim > 2) {
            EXPECT_EQ(dx->get(2), 0.0f);
          }
        }
      }
    }
  }
}

bool all_nan(const HostTensor& values) {
  for (std::size_t i = 0; i < values.count(); ++i) {
    if (!std::isnan(values.get(i))) return false;
  }
  return true;
}

TEST_P(L2NormBackwardSemantics, ZeroRowWithoutEpsIsNaN) {
  for (const std::int64_t dim : kSemanticsDims) {
    for (const EpsMode mode : kModes) {
      const L2NormOptions options{.eps = 0.0f, .eps_mode = mode};
      // The forward gives NaN y and an infinite rstd for this row.
      EXPECT_TRUE(all_nan(row(DType::f32, {1.0f}, {kNaN, kNaN}, kInf, dim, options)));
      EXPECT_TRUE(all_nan(row(DType::f32, {1.0f}, {}, std::nullopt, dim, options)))
          << eps_mode_name(mode) << " dim " << dim;
    }
  }
}

TEST_P(L2NormBackwardSemantics, NaNOrInfMakesTheRowNaN) {
  for (const std::int64_t dim : kSemanticsDims) {
    for (const DType dtype : kDTypes) {
      for (const EpsMode mode : kModes) {
        const L2NormOptions options{.eps_mode = mode};
        const std::string what = std::string(dtype_name(dtype)) + " " +
                                 std::string(eps_mode_name(mode)) + " dim " + std::to_string(dim);
        EXPECT_TRUE(all_nan(row(dtype, {kNaN, 1.0f}, {0.6f, 0.8f}, 0.2f, dim, options))) << what;
        EXPECT_TRUE(all_nan(row(dtype, {1.0f, 1.0f}, {kNaN, 0.8f}, 0.2f, dim, options))) << what;
        EXPECT_TRUE(all_nan(row(dtype, {kInf, 1.0f}, {0.6f, 0.8f}, 0.2f, dim, options))) << what;
        EXPECT_TRUE(all_nan(row(dtype, {1.0f, 1.0f}, {0.6f, 0.8f}, kNaN, dim, options))) << what;
        EXPECT_TRUE(all_nan(row(dtype, {1.0f, 1.0f}, {kInf, 0.8f}, std::nullopt, dim, options)))
            << what;
        EXPECT_TRUE(all_nan(row(dtype, {1.0f, 1.0f}, {kNaN, 0.8f}, std::nullopt, dim, options)))
            << what;
      }
    }
  }
}

TEST_P(L2NormBackwardSemantics, HugeAndTinyRowsFromTheInput) {
  for (const std::int64_t dim : kSemanticsDims) {
    for (const EpsMode mode : kModes) {
      // x = [3e20, 4e20]: the sum of squares overflows f32; y = [0.6, 0.8], r = 2e-21.
      // dy = [1, 0]: dy . y = 0.6, dx = r * ([1, 0] - 0.6 [0.6, 0.8]) = r * [0.64, -0.48].
      const HostTensor huge = row(DType::f32, {1.0f, 0.0f}, {3e20f, 4e20f}, std::nullopt, dim,
                                  {.eps = 1e-6f, .eps_mode = mode});
      EXPECT_NEAR(huge.get(0), 0.64 * 2e-21, 1e-6 * 0.64 * 2e-21) << eps_mode_name(mode);
      EXPECT_NEAR(huge.get(1), -0.48 * 2e-21, 1e-6 * 0.48 * 2e-21) << eps_mode_name(mode);
      // x = [3e-40, 4e-40] (subnormal, not flushed) and eps = 0: r = 2e39 overflows f32, y is
      // [0.6, 0.8], and dx = r * [0.64, -0.48] is beyond f32: +-Inf.
      const HostTensor tiny = row(DType::f32, {1.0f, 0.0f}, {3e-40f, 4e-40f}, std::nullopt, dim,
                                  {.eps = 0.0f, .eps_mode = mode});
      EXPECT_EQ(tiny.get(0), kInf) << eps_mode_name(mode);
      EXPECT_EQ(tiny.get(1), -kInf) << eps_mode_name(mode);
      // x = [3e-30, 4e-30], eps = 0: r = 2e29, dx = 2e29 * [0.64, -0.48], finite.
      const HostTensor small = row(DType::f32, {1.0f, 0.0f}, {3e-30f, 4e-30f}, std::nullopt, dim,
                                   {.eps = 0.0f, .eps_mode = mode});
      EXPECT_NEAR(small.get(0), 0.64 * 2e29, 1e-6 * 0.64 * 2e29) << eps_mode_name(mode);
      EXPECT_NEAR(small.get(1), -0.48 * 2e29, 1e-6 * 0.48 * 2e29) << eps_mode_name(mode);
    }
  }
}

TEST_P(L2NormBackwardSemantics, ClampedRowsPassNoGradientToTheNorm) {
  // Norm 0.5 below eps = 1: dx = scale * dy / eps, whatever dy . y.
  const L2NormOptions options{.eps = 1.0f, .scale = 2.0f, .eps_mode = EpsMode::clamp};
  for (const std::int64_t dim : kSemanticsDims) {
    const HostTensor from_output = row(DType::f32, {1.0f, 2.0f}, {0.3f, 0.4f}, 1.0f, dim, options);
    const HostTensor from_input =
        row(DType::f32, {1.0f, 2.0f}, {0.3f, 0.4f}, std::nullopt, dim, options);
    for (const HostTensor* dx : {&from_output, &from_input}) {
      EXPECT_EQ(dx->get(0), 2.0f) << dim;
      EXPECT_EQ(dx->get(1), 4.0f) << dim;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, L2NormBackward, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, L2NormBackwardViews, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, L2NormBackwardSemantics, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

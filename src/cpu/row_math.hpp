// One row of l2_norm on the CPU, steps 2 to 5 of docs/DESIGN.md "Semantics": the f32 common
// path, the f64 rare path, the rounding and the scaled variant, and the layout of the stores.
//
// Only +, *, /, sqrt and exact conversions are used, and the including file is built with
// -ffp-contract=off, so every instruction-set clone rounds identically.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "cpu/chunk.hpp"
#include "cpu/row_sum.hpp"
#include "l2norm/ops.hpp"

namespace l2norm::detail::cpu {

// Rows whose f32 sum of squares is below this may have lost squares to underflow: rare path.
constexpr float kTinySumOfSquares = 0x1p-100f;

struct RowOptions {
  float eps;
  float scale;
  bool scaled;
  EpsMode eps_mode;
  bool streaming;  // store whole output lines with non-temporal stores
};

// max(norm, eps) for clamp mode, NaN when the norm is NaN: a row holding a NaN must come out all
// NaN, and std::fmax would return eps there and scale the row's other elements by 1/eps.
template <class Float>
inline Float max_propagating_nan(Float norm, Float eps) {
  return norm < eps ? eps : norm;
}

// round_T(y), then for the scaled variant round_T(round_T(y) * scale) as a separate multiply.
// Only common-path rows get here: x and inv are finite and |y| <= 1 (up to rounding), so neither
// y nor the scaled value can be NaN.
template <DType T>
inline RawOf<T> finish(const Widened<T>& y, const RowOptions& options) {
  const RawOf<T> rounded = narrow<T, false>(y);
  return options.scaled ? narrow<T, false>(widen<T>(rounded) * options.scale) : rounded;
}

template <DType T>
inline ElementOf<T> finish_scalar(float y, const RowOptions& options) {
  const ElementOf<T> rounded = narrow_scalar<T>(y);
  return options.scaled ? narrow_scalar<T>(widen_scalar<T>(rounded) * options.scale) : rounded;
}

// Elements before the first 64-byte aligned output address, or -1 when the output is not even
// element-aligned (then no store can stream).
template <DType T>
inline std::int64_t elements_before_line_alignment(const ElementOf<T>* y) {
  const auto address = reinterpret_cast<std::uintptr_t>(y);
  if (address % sizeof(ElementOf<T>) != 0) return -1;
  const std::uintptr_t misalignment = address % kChunkBytes;
  return misalignment == 0
             ? 0
             : static_cast<std::int64_t>((kChunkBytes - misalignment) / sizeof(ElementOf<T>));
}

// y = finish(x * inv) over the row. With streaming stores the chunks are laid on the output's
// cache lines, so that each one writes a whole line; the partial chunks at both ends are stored
// normally.
template <DType T>
inline void scale_row(const ElementOf<T>* x, ElementOf<T>* y, std::int64_t dim, float inv,
                      const RowOptions& options) {
  constexpr std::int64_t kChunk = kChunkElements<T>;
  std::int64_t head = 0;
  bool stream = false;
  if (options.streaming) {
    head = elements_before_line_alignment<T>(y);
    stream = head >= 0;
    head = std::clamp<std::int64_t>(head, 0, dim);
  }
  const auto scale_partial = [&](std::int64_t begin, std::int64_t count) {
    store_partial<T>(y + begin,
                     finish<T>(widen<T>(load_partial<T>(x + begin, count)) * inv, options), count);
  };
  const std::int64_t body_end = head + (dim - head) / kChunk * kChunk;
  if (head > 0) scale_partial(0, head);
  if (stream) {
    for (std::int64_t begin = head; begin < body_end; begin += kChunk) {
      store_streaming<T>(y + begin, finish<T>(widen<T>(load<T>(x + begin)) * inv, options));
    }
  } else {
    for (std::int64_t begin = head; begin < body_end; begin += kChunk) {
      store<T>(y + begin, finish<T>(widen<T>(load<T>(x + begin)) * inv, options));
    }
  }
  if (body_end < dim) scale_partial(body_end, dim - body_end);
}

// Rows whose f32 sum overflowed, is NaN, or may have underflowed: redo the sum in double, where
// squares of f32 values neither overflow nor underflow. A NaN in the row makes the sum NaN, and
// with it every output; an Inf (and no NaN) makes it Inf, so inv is 0 and the Inf positions give
// NaN (Inf * 0) and the finite ones +-0. Returns the f64 factor the row was scaled by.
template <DType T>
inline double normalize_row_in_double(const ElementOf<T>* x, ElementOf<T>* y, std::int64_t dim,
                                      const RowOptions& options) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < dim; ++i) {
    const double value = widen_scalar<T>(x[i]);
    sum += value * value;
  }
  const double eps = options.eps;
  const double inv = options.eps_mode == EpsMode::add
                         ? 1.0 / std::sqrt(sum + eps)
                         : 1.0 / max_propagating_nan(std::sqrt(sum), eps);
  for (std::int64_t i = 0; i < dim; ++i) {
    const auto normalized = static_cast<float>(static_cast<double>(widen_scalar<T>(x[i])) * inv);
    y[i] = finish_scalar<T>(normalized, options);
  }
  return inv;
}

// y = x / sqrt(sum(x^2) + eps) (add) or x / max(sqrt(sum(x^2)), eps) (clamp), rounded to T.
// `y` may be `x` (in place): each chunk is read before it is written. Returns the row's rstd: the
// f32 factor the row was scaled by (before scale), or on the rare path the f64 one rounded to f32.
template <DType T>
inline float normalize_row(const ElementOf<T>* x, ElementOf<T>* y, std::int64_t dim,
                           const RowOptions& options) {
  const float sum = sum_of_squares<T>(x, dim);
  if (!(sum >= kTinySumOfSquares && sum <= FLT_MAX)) {
    return static_cast<float>(normalize_row_in_double<T>(x, y, dim, options));
  }
  const float inv = options.eps_mode == EpsMode::add
                        ? 1.0f / std::sqrt(sum + options.eps)
                        : 1.0f / max_propagating_nan(std::sqrt(sum), options.eps);
  scale_row<T>(x, y, dim, inv, options);
  return inv;
}

}  // namespace l2norm::detail::cpu

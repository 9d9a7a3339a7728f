// One row of l2_norm on the CPU, steps 2 to 5 of docs/DESIGN.md "Semantics": the f32 common
// path, the f64 rare path, the rounding to the output type (the input's or another) and the scaled
// variant, and the layout of the stores.
//
// Only +, *, /, sqrt and exact conversions are used, and the including file is built with
// -ffp-contract=off, so every instruction-set clone rounds identically.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

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

// ---- the scaling pass: steps that pair chunks of the input and the output ----

// Elements one step of the scaling pass moves: a chunk of the type with the larger chunks (16 f32
// or 32 16-bit elements), so a step is whole chunks of both types: one or two of each.
template <DType In, DType Out>
inline constexpr std::int64_t kStepElements =
    kChunkElements<In> > kChunkElements<Out> ? kChunkElements<In> : kChunkElements<Out>;
template <DType In, DType Out>
inline constexpr int kInputChunks = int(kStepElements<In, Out> / kChunkElements<In>);
template <DType In, DType Out>
inline constexpr int kOutputChunks = int(kStepElements<In, Out> / kChunkElements<Out>);
// Whether a widened input chunk holds its elements in the lanes a widened output chunk does (both
// f32, or both 16-bit: even and odd elements, cpu/chunk.hpp). Otherwise (f32 with a 16-bit type)
// a step's values are kept in element order (widen_in_order), which pairs them up element by
// element; the shuffles only move values, so every result is the same.
template <DType In, DType Out>
inline constexpr bool kSameLanes = kVectorsPerChunk<In> == kVectorsPerChunk<Out>;

// A step's values in f32, as the output's chunks hold them.
template <DType In, DType Out>
struct StepValues {
  Widened<Out> chunks[kOutputChunks<In, Out>];
};

template <DType In, DType Out>
inline StepValues<In, Out> operator*(const StepValues<In, Out>& values, float factor) {
  StepValues<In, Out> product;
  for (int c = 0; c < kOutputChunks<In, Out>; ++c) product.chunks[c] = values.chunks[c] * factor;
  return product;
}

// The `count` (1 to kStepElements) elements of a step at x, widened exactly; zeros past `count`.
template <DType In, DType Out>
inline StepValues<In, Out> load_step(const ElementOf<In>* x, std::int64_t count) {
  StepValues<In, Out> values{};
  if constexpr (kSameLanes<In, Out>) {
    const Widened<In> widened = widen<In>(load_up_to<In>(x, count));
    for (int k = 0; k < kVectorsPerChunk<In>; ++k) values.chunks[0].vectors[k] = widened.vectors[k];
  } else if constexpr (In == DType::f32) {
    // Two f32 chunks into one 16-bit output chunk, in element order.
    for (int c = 0; c < kInputChunks<In, Out>; ++c) {
      const std::int64_t available =
          std::clamp<std::int64_t>(count - c * kChunkElements<In>, 0, kChunkElements<In>);
      if (available > 0) {
        values.chunks[0].vectors[c] = load_up_to<In>(x + c * kChunkElements<In>, available);
      }
    }
  } else {
    // One 16-bit chunk into two f32 output chunks, in element order.
    const Widened<In> widened = widen_in_order<In>(load_up_to<In>(x, count));
    for (int c = 0; c < kOutputChunks<In, Out>; ++c)
      values.chunks[c].vectors[0] = widened.vectors[c];
  }
  return values;
}

// round_Out(y) of one output chunk, then for the scaled variant round_Out(round_Out(y) * scale) as
// a separate multiply. Only common-path rows get here: x and inv are finite and |y| <= 1 (up to
// rounding), so neither y nor the scaled value can be NaN. InOrder: the chunk's values are in
// element order.
template <DType Out, bool InOrder>
inline RawOf<Out> finish(const Widened<Out>& y, const RowOptions& options) {
  const auto to_out = [](const Widened<Out>& values) {
    if constexpr (InOrder) {
      return narrow_in_order<Out, false>(values);
    } else {
      return narrow<Out, false>(values);
    }
  };
  const RawOf<Out> rounded = to_out(y);
  if (!options.scaled) return rounded;
  if constexpr (InOrder) {
    return to_out(widen_in_order<Out>(rounded) * options.scale);
  } else {
    return to_out(widen<Out>(rounded) * options.scale);
  }
}

template <DType Out>
inline ElementOf<Out> finish_scalar(float y, const RowOptions& options) {
  const ElementOf<Out> rounded = narrow_scalar<Out>(y);
  return options.scaled ? narrow_scalar<Out>(widen_scalar<Out>(rounded) * options.scale) : rounded;
}

// How a step's output chunks are stored: whole ones plainly or non-temporally (at a 64-byte
// aligned address), the first `count` elements of a partial step plainly.
enum class StepStore { whole, streaming, partial };

// Joins the partial output lines of consecutive rows of a streamed output. A row whose bytes do
// not begin and end on 64-byte boundaries (a base address off the line grid, or a row length that
// is not whole lines) leaves a partial line at each end; where the rows are contiguous, one row's
// tail and the next row's head make up one whole line, which is stored non-temporally like the
// lines between them instead of twice with ordinary stores (each a read for ownership of a line
// the streamed lines around it skip). Pieces are added in address order; a piece that does not
// continue the pending line first stores that line's bytes with ordinary stores (flush), as does
// the end of a range of rows, so every byte is written exactly once and no byte outside the rows.
class LineJoiner {
  static constexpr auto kLineBytes = static_cast<std::size_t>(kChunkBytes);

 public:
  LineJoiner() = default;
  LineJoiner(const LineJoiner&) = delete;
  LineJoiner& operator=(const LineJoiner&) = delete;

  // The first `count` elements of `raw`, to be stored at `destination`; all within one line.
  template <DType T>
  void add(ElementOf<T>* destination, const RawOf<T>& raw, std::int64_t count) {
    const auto address = reinterpret_cast<std::uintptr_t>(destination);
    auto* line = reinterpret_cast<unsigned char*>(address - address % kLineBytes);
    const auto offset = static_cast<std::size_t>(address % kLineBytes);
    const auto bytes = static_cast<std::size_t>(count) * sizeof(ElementOf<T>);
    if (line != line_ || offset != end_) {
      flush();
      line_ = line;
      begin_ = offset;
    }
    pending_ = partial::place_bytes(pending_, std::bit_cast<U32x16>(raw), offset, bytes);
    end_ = offset + bytes;
    if (begin_ == 0 && end_ == kLineBytes) {
      store_streaming_line(line_, pending_);
      line_ = nullptr;
    }
  }

  // Stores the pending bytes, if any, with ordinary stores.
  void flush() {
    if (line_ == nullptr) return;
    partial::store_line_bytes(line_, pending_, begin_, end_);
    line_ = nullptr;
  }

 private:
  U32x16 pending_{};               // the pending line's bytes, at their offsets in the line
  unsigned char* line_ = nullptr;  // the pending line, or none
  std::size_t begin_ = 0;          // its pending bytes: [begin_, end_)
  std::size_t end_ = 0;
};

// Rounds a step's values to Out (finish) and stores its first `count` elements at y; partial
// steps of a streamed row go through `joiner` where one is given.
template <DType In, DType Out, StepStore How>
inline void store_step(ElementOf<Out>* y, const StepValues<In, Out>& values, std::int64_t count,
                       const RowOptions& options, LineJoiner* joiner = nullptr) {
  constexpr bool kInOrder = !kSameLanes<In, Out> && Out != DType::f32;
  for (int c = 0; c < kOutputChunks<In, Out>; ++c) {
    ElementOf<Out>* chunk = y + c * kChunkElements<Out>;
    if constexpr (How == StepStore::partial) {
      const std::int64_t available =
          std::clamp<std::int64_t>(count - c * kChunkElements<Out>, 0, kChunkElements<Out>);
      if (available > 0 && joiner != nullptr) {
        joiner->add<Out>(chunk, finish<Out, kInOrder>(values.chunks[c], options), available);
      } else if (available > 0) {
        store_partial<Out>(chunk, finish<Out, kInOrder>(values.chunks[c], options), available);
      }
    } else if constexpr (How == StepStore::streaming) {
      store_streaming<Out>(chunk, finish<Out, kInOrder>(values.chunks[c], options));
    } else {
      store<Out>(chunk, finish<Out, kInOrder>(values.chunks[c], options));
    }
  }
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

// y = finish(x * inv) over the row. With streaming stores the steps are laid on the output's
// cache lines, so that each one writes whole lines; the partial steps at both ends are stored
// normally, or handed to `joiner` (which streams the lines they complete with the next row's).
template <DType In, DType Out>
inline void scale_row(const ElementOf<In>* x, ElementOf<Out>* y, std::int64_t dim, float inv,
                      const RowOptions& options, LineJoiner* joiner) {
  constexpr std::int64_t kStep = kStepElements<In, Out>;
  std::int64_t head = 0;
  bool stream = false;
  if (options.streaming) {
    head = elements_before_line_alignment<Out>(y);
    stream = head >= 0;
    head = std::clamp<std::int64_t>(head, 0, dim);
  }
  LineJoiner* const join = stream ? joiner : nullptr;
  const auto scale_partial = [&](std::int64_t begin, std::int64_t count) {
    store_step<In, Out, StepStore::partial>(y + begin, load_step<In, Out>(x + begin, count) * inv,
                                            count, options, join);
  };
  const std::int64_t body_end = head + (dim - head) / kStep * kStep;
  if (head > 0) scale_partial(0, head);
  if (stream) {
    for (std::int64_t begin = head; begin < body_end; begin += kStep) {
      store_step<In, Out, StepStore::streaming>(
          y + begin, load_step<In, Out>(x + begin, kStep) * inv, kStep, options);
    }
  } else {
    for (std::int64_t begin = head; begin < body_end; begin += kStep) {
      store_step<In, Out, StepStore::whole>(y + begin, load_step<In, Out>(x + begin, kStep) * inv,
                                            kStep, options);
    }
  }
  if (body_end < dim) scale_partial(body_end, dim - body_end);
}

// Rows whose f32 sum overflowed, is NaN, or may have underflowed: redo the sum in double, where
// squares of f32 values neither overflow nor underflow. A NaN in the row makes the sum NaN, and
// with it every output; an Inf (and no NaN) makes it Inf, so inv is 0 and the Inf positions give
// NaN (Inf * 0) and the finite ones +-0. Returns the f64 factor the row was scaled by.
template <DType In, DType Out>
inline double normalize_row_in_double(const ElementOf<In>* x, ElementOf<Out>* y, std::int64_t dim,
                                      const RowOptions& options) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < dim; ++i) {
    const double value = widen_scalar<In>(x[i]);
    sum += value * value;
  }
  const double eps = options.eps;
  const double inv = options.eps_mode == EpsMode::add
                         ? 1.0 / std::sqrt(sum + eps)
                         : 1.0 / max_propagating_nan(std::sqrt(sum), eps);
  for (std::int64_t i = 0; i < dim; ++i) {
    const auto normalized = static_cast<float>(static_cast<double>(widen_scalar<In>(x[i])) * inv);
    y[i] = finish_scalar<Out>(normalized, options);
  }
  return inv;
}

// The second half of a row's normalization, from its f32 sum of squares: the rare path where the
// sum may be wrong, else the factor and the scaling pass. Returns the row's rstd.
template <DType In, DType Out>
inline float normalize_row_from_sum(const ElementOf<In>* x, ElementOf<Out>* y, std::int64_t dim,
                                    float sum, const RowOptions& options, LineJoiner* joiner) {
  if (!(sum >= kTinySumOfSquares && sum <= FLT_MAX)) {
    return static_cast<float>(normalize_row_in_double<In, Out>(x, y, dim, options));
  }
  const float inv = options.eps_mode == EpsMode::add
                        ? 1.0f / std::sqrt(sum + options.eps)
                        : 1.0f / max_propagating_nan(std::sqrt(sum), options.eps);
  scale_row<In, Out>(x, y, dim, inv, options, joiner);
  return inv;
}

// y = x / sqrt(sum(x^2) + eps) (add) or x / max(sqrt(sum(x^2)), eps) (clamp), rounded once to Out.
// The sum and the factor depend on In and dim alone. `y` may be `x` (in place, In == Out): each
// step is read before it is written. Returns the row's rstd: the f32 factor the row was scaled by
// (before scale), or on the rare path the f64 one rounded to f32. `joiner` (streaming only, or
// null) joins the partial lines of consecutive rows; the caller flushes it after its last row.
template <DType In, DType Out>
inline float normalize_row(const ElementOf<In>* x, ElementOf<Out>* y, std::int64_t dim,
                           const RowOptions& options, LineJoiner* joiner = nullptr) {
  return normalize_row_from_sum<In, Out>(x, y, dim, sum_of_squares<In>(x, dim), options, joiner);
}

// Rows of 16-bit inputs of at most this many bytes are normalized two at a time
// (normalize_row_pair). A 16-bit row costs more instructions per byte than an f32 row (widening,
// then rounding to 16 bits), so its chain from load to store is what limits short rows; an f32
// row's chain is shorter than its memory time, so f32 rows keep the row-by-row loop.
template <DType In>
inline constexpr bool kPairsShortRows = In != DType::f32;
inline constexpr std::int64_t kPairedRowBytes = 2048;

// Two rows, each exactly as normalize_row computes it: both sums first, then each row's factor and
// scaling pass, the first row's before the second's. A short row's time is mostly the chain from
// its last load through the sum's fold, the square root and the division to its first store;
// two independent chains side by side overlap. The second row's input is read before the first
// row's output is written, so the rows must not overlap each other (in place, each row on itself,
// is fine).
template <DType In, DType Out>
inline void normalize_row_pair(const ElementOf<In>* x0, ElementOf<Out>* y0, const ElementOf<In>* x1,
                               ElementOf<Out>* y1, std::int64_t dim, const RowOptions& options,
                               LineJoiner* joiner, float& rstd0, float& rstd1) {
  const float sum0 = sum_of_squares<In>(x0, dim);
  const float sum1 = sum_of_squares<In>(x1, dim);
  rstd0 = normalize_row_from_sum<In, Out>(x0, y0, dim, sum0, options, joiner);
  rstd1 = normalize_row_from_sum<In, Out>(x1, y1, dim, sum1, options, joiner);
}

}  // namespace l2norm::detail::cpu

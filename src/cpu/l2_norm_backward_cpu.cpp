// The gradient of l2_norm on the CPU (docs/DESIGN.md "Semantics", "Backward"). Per row:
//   d  = dy . y in f32, in the fixed order of cpu/row_sum.hpp over blocks of 128 elements in
//        element order (cpu/chunk.hpp widen_in_order), so dy and y of any dtypes pair up;
//   dx = round(scale * (r * (dy - d * y)))   (clamped rows: round(scale * (r * dy))),
//        each operation rounded to f32 as written, then once to dx's dtype.
// r and y are the forward's: the given rstd and y, or, from the input, recomputed exactly as
// cpu/row_math.hpp's l2_norm does before rounding to the output type (the same sum of squares, the
// f32 common path, the f64 rare path whose factor stays in f64 here too). Rows are read twice (the
// dot product, then dx) and spread over the thread pool (cpu/row_schedule.hpp). Results depend on
// dim, the dtypes and the options only: not on alignment, thread count or instruction-set clone.
#include "ops/l2_norm_backward_call.hpp"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "core/backend.hpp"
#include "cpu/chunk.hpp"
#include "cpu/row_math.hpp"
#include "cpu/row_schedule.hpp"
#include "cpu/row_sum.hpp"

namespace l2norm::detail::cpu {
namespace {

using F64x16 = double __attribute__((vector_size(128)));
using Call = L2NormBackwardCall;

struct BackwardOptions {
  float eps;
  float scale;
  bool scaled;
  bool clamp;
  // Clamp mode: a row whose inverse norm is at least 1 / eps (f32 division) had its norm clamped.
  float clamp_threshold;
};

// How a row's dx is formed: dx = scale * (factor * t), with t = dy - d * y, or t = dy where the
// clamp passed no gradient to the norm. Rare rows from the input keep the forward's f64 factor.
struct RowFactor {
  float r;
  double r_f64;
  bool rare;
  bool clamped;
};

// The block of `count` (1 to kBlockElements) elements at `source`, widened in element order:
// vectors[v][i] is element v * kLanes + i; zeros past `count`.
template <DType T>
inline void load_block(const ElementOf<T>* source, std::int64_t count,
                       F32x16 (&vectors)[kVectorsPerBlock]) {
  constexpr std::int64_t kChunk = kChunkElements<T>;
  for (std::int64_t chunk = 0; chunk < kBlockElements / kChunk; ++chunk) {
    const std::int64_t first = chunk * kChunk;
    const std::int64_t available = std::clamp<std::int64_t>(count - first, 0, kChunk);
    const RawOf<T> raw = available > 0 ? load_up_to<T>(source + first, available) : RawOf<T>{};
    const Widened<T> values = widen_in_order<T>(raw);
    for (int k = 0; k < kVectorsPerChunk<T>; ++k) {
      vectors[chunk * kVectorsPerChunk<T> + k] = values.vectors[k];
    }
  }
}

// Rounds the first `count` elements of a block in element order to T and stores them.
template <DType T>
inline void store_block(ElementOf<T>* destination, std::int64_t count,
                        const F32x16 (&vectors)[kVectorsPerBlock]) {
  constexpr std::int64_t kChunk = kChunkElements<T>;
  for (std::int64_t chunk = 0; chunk < kBlockElements / kChunk; ++chunk) {
    const std::int64_t first = chunk * kChunk;
    const std::int64_t available = std::min(count - first, kChunk);
    if (available <= 0) return;
    Widened<T> values;
    for (int k = 0; k < kVectorsPerChunk<T>; ++k) {
      values.vectors[k] = vectors[chunk * kVectorsPerChunk<T> + k];
    }
    const RawOf<T> raw = narrow_in_order<T, true>(values);
    if (available == kChunk) {
      store<T>(destination + first, raw);
    } else {
      store_partial<T>(destination + first, raw, available);
    }
  }
}

// The block loads and stores for a dtype known at run time (validated: f32, f16 or bf16): a branch
// per block of 128 elements, which keeps one copy of the row code for every combination of dtypes.
inline void load_block_as(DType dtype, const void* row, std::int64_t first, std::int64_t count,
                          F32x16 (&vectors)[kVectorsPerBlock]) {
  if (dtype == DType::f32) {
    load_block<DType::f32>(static_cast<const float*>(row) + first, count, vectors);
  } else if (dtype == DType::f16) {
    load_block<DType::f16>(static_cast<const std::uint16_t*>(row) + first, count, vectors);
  } else {
    load_block<DType::bf16>(static_cast<const std::uint16_t*>(row) + first, count, vectors);
  }
}

inline void store_block_as(DType dtype, void* row, std::int64_t first, std::int64_t count,
                           const F32x16 (&vectors)[kVectorsPerBlock]) {
  if (dtype == DType::f32) {
    store_block<DType::f32>(static_cast<float*>(row) + first, count, vectors);
  } else if (dtype == DType::f16) {
    store_block<DType::f16>(static_cast<std::uint16_t*>(row) + first, count, vectors);
  } else {
    store_block<DType::bf16>(static_cast<std::uint16_t*>(row) + first, count, vectors);
  }
}

// y as the forward stored it (scale 1), widened exactly.
struct StoredY {
  DType dtype;
  const void* y;
  void operator()(std::int64_t first, std::int64_t count, F32x16 (&out)[kVectorsPerBlock]) const {
    load_block_as(dtype, y, first, count, out);
  }
};

// y recomputed from x as the forward computes it before rounding: x * r in f32, or, for rare rows,
// (float)(x * inverse) in f64.
struct RecomputedY {
  DType dtype;
  const void* x;
  const RowFactor& factor;
  void operator()(std::int64_t first, std::int64_t count, F32x16 (&out)[kVectorsPerBlock]) const {
    load_block_as(dtype, x, first, count, out);
    for (F32x16& vector : out) {
      vector = factor.rare ? __builtin_convertvector(
                                 __builtin_convertvector(vector, F64x16) * factor.r_f64, F32x16)
                           : vector * factor.r;
    }
  }
};

inline RowFactor stored_factor(float rstd, const BackwardOptions& options) {
  return {rstd, 0.0, false, options.clamp && rstd >= options.clamp_threshold};
}

// The forward's inverse norm of row x (cpu/row_math.hpp normalize_row: the same sum of squares,
// the same paths, the same operations).
template <DType X>
inline RowFactor input_factor(const ElementOf<X>* x, std::int64_t dim,
                              const BackwardOptions& options) {
  const float sum = sum_of_squares<X>(x, dim);
  if (sum >= kTinySumOfSquares && sum <= FLT_MAX) {
    const float r = options.clamp ? 1.0f / max_propagating_nan(std::sqrt(sum), options.eps)
                                  : 1.0f / std::sqrt(sum + options.eps);
    return {r, 0.0, false, options.clamp && r >= options.clamp_threshold};
  }
  double sum_f64 = 0.0;
  for (std::int64_t i = 0; i < dim; ++i) {
    const double value = widen_scalar<X>(x[i]);
    sum_f64 += value * value;
  }
  const double eps = options.eps;
  const double inverse = options.clamp ? 1.0 / max_propagating_nan(std::sqrt(sum_f64), eps)
                                       : 1.0 / std::sqrt(sum_f64 + eps);
  return {0.0f, inverse, true,
          options.clamp && inverse >= static_cast<double>(options.clamp_threshold)};
}

inline RowFactor input_factor_as(DType dtype, const void* x, std::int64_t dim,
                                 const BackwardOptions& options) {
  if (dtype == DType::f32)
    return input_factor<DType::f32>(static_cast<const float*>(x), dim, options);
  if (dtype == DType::f16) {
    return input_factor<DType::f16>(static_cast<const std::uint16_t*>(x), dim, options);
  }
  return input_factor<DType::bf16>(static_cast<const std::uint16_t*>(x), dim, options);
}

// A row with a non-finite factor, or an unclamped row whose dot product is not finite (a NaN or
// Inf in dy or y, or an overflow), has no meaningful gradient: all of its dx is the default quiet
// NaN. (Computing it would give each element one of two NaNs, the factor's or the element's,
// picked by the operand order of a multiply, which differs between instruction-set versions.)
inline bool has_gradient(const RowFactor& factor, float dot) {
  const bool finite = factor.rare ? std::isfinite(factor.r_f64) : std::isfinite(factor.r);
  return finite && (factor.clamped || std::isfinite(dot));
}

inline F32x16 gradient(const F32x16& dy, const F32x16& y, float dot, const RowFactor& factor,
                       const BackwardOptions& options) {
  const F32x16 t = factor.clamped ? dy : dy - dot * y;
  const F32x16 unscaled =
      factor.rare
          ? __builtin_convertvector(__builtin_convertvector(t, F64x16) * factor.r_f64, F32x16)
          : factor.r * t;
  return options.scaled ? unscaled * options.scale : unscaled;
}

// dx for one row. `dx` may be `dy` (same dtype): every block of dy is read before the same block
// of dx is written, and the dot product is complete before the first write.
template <class YBlock>
inline void backward_row(const Call& call, const void* dy, const YBlock& y_block, void* dx,
                         const RowFactor& factor, const BackwardOptions& options) {
  float dot = 0.0f;
  if (!factor.clamped) {
    dot = fixed_order_sum(call.dim, [&](std::int64_t first, std::int64_t count) {
      F32x16 gradients[kVectorsPerBlock];
      F32x16 outputs[kVectorsPerBlock];
      load_block_as(call.dy_dtype, dy, first, count, gradients);
      y_block(first, count, outputs);
      F32x16 products[kVectorsPerBlock];
      for (std::int64_t v = 0; v < kVectorsPerBlock; ++v) products[v] = gradients[v] * outputs[v];
      return pairwise_sum(products);
    });
  }
  const bool meaningful = has_gradient(factor, dot);
  for (std::int64_t first = 0; first < call.dim; first += kBlockElements) {
    const std::int64_t count = std::min(kBlockElements, call.dim - first);
    F32x16 result[kVectorsPerBlock];
    if (meaningful) {
      F32x16 gradients[kVectorsPerBlock];
      F32x16 outputs[kVectorsPerBlock]{};
      load_block_as(call.dy_dtype, dy, first, count, gradients);
      if (!factor.clamped) y_block(first, count, outputs);
      for (std::int64_t v = 0; v < kVectorsPerBlock; ++v) {
        result[v] = gradient(gradients[v], outputs[v], dot, factor, options);
      }
    } else {
      for (F32x16& vector : result) vector = F32x16{} + std::numeric_limits<float>::quiet_NaN();
    }
    store_block_as(call.dtype, dx, first, count, result);
  }
}

// Walks the rows of the three views in order, keeping their element offsets up to date without a
// division per row.
class RowsCursor {
 public:
  RowsCursor(const RowsLayout<3>& layout, std::int64_t row) : layout_(layout) {
    for (std::size_t v = 0; v < 3; ++v) offsets_[v] = row_offset(layout, layout.strides[v], row);
    for (int i = layout.outer_rank - 1; i >= 0; --i) {
      const std::int64_t size = layout.outer_sizes[std::size_t(i)];
      index_[std::size_t(i)] = row % size;
      row /= size;
    }
  }

  std::int64_t offset(int view) const { return offsets_[std::size_t(view)]; }

  void advance() {
    for (int i = layout_.outer_rank - 1; i >= 0; --i) {
      const auto axis = std::size_t(i);
      for (std::size_t v = 0; v < 3; ++v) offsets_[v] += layout_.strides[v][axis];
      if (++index_[axis] < layout_.outer_sizes[axis]) return;
      for (std::size_t v = 0; v < 3; ++v) {
        offsets_[v] -= layout_.outer_sizes[axis] * layout_.strides[v][axis];
      }
      index_[axis] = 0;
    }
  }

 private:
  const RowsLayout<3>& layout_;
  std::array<std::int64_t, kMaxOuterRank> index_{};
  std::array<std::int64_t, 3> offsets_{};
};

// The row loop; every dtype combination shares it.
inline void walk_rows(const Call& call, const BackwardOptions& options, std::int64_t row_begin,
                      std::int64_t row_end) {
  const auto* dy = static_cast<const char*>(call.dy);
  const auto* y = static_cast<const char*>(call.y);
  auto* dx = static_cast<char*>(call.dx);
  const auto dy_bytes = static_cast<std::int64_t>(dtype_size(call.dy_dtype));
  const auto y_bytes = static_cast<std::int64_t>(dtype_size(call.y_dtype));
  const auto dx_bytes = static_cast<std::int64_t>(dtype_size(call.dtype));
  RowsCursor cursor(call.layout, row_begin);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const char* dy_row = dy + cursor.offset(Call::kDy) * dy_bytes;
    const char* y_row = y + cursor.offset(Call::kY) * y_bytes;
    char* dx_row = dx + cursor.offset(Call::kDx) * dx_bytes;
    if (call.from_input) {
      const RowFactor factor = input_factor_as(call.y_dtype, y_row, call.dim, options);
      backward_row(call, dy_row, RecomputedY{call.y_dtype, y_row, factor}, dx_row, factor, options);
    } else {
      const RowFactor factor = stored_factor(call.rstd[row * call.rstd_stride], options);
      backward_row(call, dy_row, StoredY{call.y_dtype, y_row}, dx_row, factor, options);
    }
    cursor.advance();
  }
}

// The instruction-set versions of the row loop.
L2NORM_CPU_KERNEL(void backward_rows(const Call& call, const BackwardOptions& options,
                                     std::int64_t row_begin, std::int64_t row_end),
                  { walk_rows(call, options, row_begin, row_end); })

}  // namespace

std::string run(Backend, EncoderImpl&, const L2NormBackwardCall& call) {
  const auto row_bytes =
      call.dim * static_cast<std::int64_t>(dtype_size(call.dy_dtype) + dtype_size(call.y_dtype) +
                                           dtype_size(call.dtype));
  const std::int64_t job_bytes =
      call.rows > INT64_MAX / row_bytes ? INT64_MAX : call.rows * row_bytes;
  const bool clamp = call.eps_mode == EpsMode::clamp;
  const BackwardOptions options{call.eps, call.scale, call.scaled, clamp,
                                clamp ? 1.0f / call.eps : 0.0f};

  for_each_row_range(call.rows, job_bytes, [&](std::int64_t row_begin, std::int64_t row_end) {
    backward_rows(call, options, row_begin, row_end);
  });

  std::string variant = "cpu.l2_norm_backward<dy=";
  variant += dtype_name(call.dy_dtype);
  variant += call.from_input ? ",x=" : ",y=";
  variant += dtype_name(call.y_dtype);
  variant += ",dx=";
  variant += dtype_name(call.dtype);
  variant += clamp ? ",clamp" : ",add";
  variant += call.scaled ? ",scaled" : ",unscaled";
  variant += call.from_input ? ",from_input>" : ",from_output>";
  return variant;
}

}  // namespace l2norm::detail::cpu

// The op: row-wise L2 normalization over the last dimension.
//
//   eps_mode add   (default; flash-linear-attention, MLX):      y = x / sqrt(sum(x^2) + eps)
//   eps_mode clamp (PyTorch F.normalize, ggml):                  y = x / max(sqrt(sum(x^2)), eps)
//   scale != 1:  y = round(round(y) * scale), bit-identical to a separate multiply pass.
//
// Input and output may each be f32, f16 or bf16, and differ: the output view's dtype picks the
// output type. The input is widened exactly to f32, normalized in f32 (and f64 on the rare path)
// and rounded once to the output type: the f32 values before rounding are those of the call with
// the input's dtype on both sides (on CUDA: with the same vector width), and only the rounding and
// the scaled multiply happen in the output type. Sums are accumulated in f32 whatever the element
// type. See README "Semantics" for zero rows, NaN/Inf, huge and tiny values.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "l2norm/encoder.hpp"
#include "l2norm/tensor.hpp"

namespace l2norm {

enum class EpsMode { add, clamp };

std::string_view eps_mode_name(EpsMode mode) noexcept;
// "add" or "clamp"; throws Error(invalid_argument) otherwise.
EpsMode parse_eps_mode(std::string_view text);

struct L2NormOptions {
  float eps = 1e-6f;
  float scale = 1.0f;
  EpsMode eps_mode = EpsMode::add;
};

// Normalizes each row of `input` (rows = product of the leading dims, dim = last dim) into
// `output`, rounding to output's dtype (f32, f16 or bf16, the input's or another): with scale,
// round_out(round_out(y) * scale), bit-identical to normalizing into the output dtype and then a
// separate multiply pass in it. Both views must have the same shape, live on the encoder's device
// and have a unit stride in the last dimension; other strides are non-negative and otherwise free
// (row slices of a packed projection are accepted with no copy). A non-empty view needs a non-null,
// element-aligned pointer and a representable extent: (sum((size_i - 1) * stride_i) + 1) elements
// in bytes fit in int64 and do not run past the end of the address space.
// The rows of `output` must be provably disjoint: with its leading dims of size > 1 sorted by
// stride, each stride is at least the elements the dims inside it and the row span,
//   stride_k >= dim + sum_{j < k} (size_j - 1) * stride_j
// (a sufficient rule: a few exotic layouts whose rows happen not to collide are refused).
// `output` may have exactly `input`'s rows (in place: same pointer, dtype and shape, same strides
// in the dims of size > 1; an output at the input's address with another dtype is refused, naming
// both dtypes); otherwise no element of `output` may share a byte with an element of `input`.
// That test is exact (rows that interleave without touching are accepted) and takes O(1) for
// views whose byte ranges do not intersect, O(rows) at most.
// A view with zero rows is a no-op (its pointer is not used); dim == 0 is an error.
// Throws Error(invalid_argument) with a message naming the offending values.
void l2_norm(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
             const L2NormOptions& options = {});

// The same, also writing each row's reciprocal norm into `rstd`: f32, a 1-D view of one value per
// row (rows in row-major order of the leading dims), any non-negative stride. The value is the
// factor the row was scaled by before `scale`: 1 / sqrt(sum + eps) in add mode,
// 1 / max(norm, eps) in clamp mode, rounded to f32, whatever the input and output dtypes;
// l2_norm_backward takes it. The same launch writes both outputs; `output` is bitwise what the form
// without rstd writes.
void l2_norm(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
             const TensorView& rstd, const L2NormOptions& options = {});

// The gradient of l2_norm with respect to its input, from the forward's saved output and rstd:
//   add mode:   dx = scale * rstd * (dy - (dy . y) y)
//   clamp mode: the same where the row's norm was above eps; dx = scale * rstd * dy where it was
//               not (rstd >= 1 / eps rounded to f32: the clamp passes no gradient to the norm).
// dy is the gradient with respect to l2_norm's output, y the forward's output computed with
// scale 1 (the normalized rows), rstd the forward's rstd output, `options` the forward's. dy, y and
// dx share one shape and may each be f32, f16 or bf16 (sums in f32, dx rounded once); dx may be
// exactly dy (in place) but must not otherwise overlap an input. A zero row with eps > 0 has the
// finite gradient scale * dy / sqrt(eps) (add mode).
void l2_norm_backward(CommandEncoder& encoder, const TensorView& dy, const TensorView& y,
                      const TensorView& rstd, const TensorView& dx,
                      const L2NormOptions& options = {});
// The same from the forward's input x, for callers that saved nothing: the norm and y are
// recomputed in f32 as the forward computes them (before rounding to the output type).
void l2_norm_backward_from_input(CommandEncoder& encoder, const TensorView& dy, const TensorView& x,
                                 const TensorView& dx, const L2NormOptions& options = {});

// The flat entry point (the one a C API wraps): contiguous buffers of rows * dim elements, each of
// its own dtype (the output's is the output type, as above). rows == 0 or dim == 0 is an error
// here; the tensor form above accepts an empty batch.
void l2_norm(CommandEncoder& encoder, const Buffer& input, const Buffer& output, std::int64_t rows,
             std::int64_t dim, const L2NormOptions& options = {});

// Compiles ahead of time every kernel variant l2_norm may pick on `device` for rows of `dim`
// elements of `input_dtype` normalized into `output_dtype` with these options (any row count,
// aligned or not), so that later dispatches need no compilation and can be captured into a CUDA
// graph. A no-op on the CPU.
void prewarm_l2_norm(const Device& device, DType input_dtype, DType output_dtype, std::int64_t dim,
                     const L2NormOptions& options = {});
// The same with one dtype for input and output.
void prewarm_l2_norm(const Device& device, DType dtype, std::int64_t dim,
                     const L2NormOptions& options = {});

// Compiles ahead of time every kernel variant l2_norm_backward (from_input false) or
// l2_norm_backward_from_input (true) may pick on `device` for rows of `dim` elements with these
// dtypes (dy, y or x, dx) and options, any row count, aligned or not. A no-op on the CPU.
void prewarm_l2_norm_backward(const Device& device, DType dy_dtype, DType y_dtype, DType dx_dtype,
                              std::int64_t dim, const L2NormOptions& options = {},
                              bool from_input = false);

// One tensor of l2_norm_pair: the views and options one l2_norm call takes, rstd optional.
struct L2NormTarget {
  TensorView input;
  TensorView output;
  std::optional<TensorView> rstd = std::nullopt;
  L2NormOptions options = {};
};

// Normalizes two independent tensors, such as q and k of a Gated DeltaNet layer, in one dispatch:
// one kernel launch on CUDA, one pass over the thread pool on the CPU. Each target follows every
// rule of l2_norm (with rstd when target.rstd holds a view) and comes out bitwise what its own
// l2_norm call writes; the two may differ in shape, strides, dtypes, eps, eps mode and scale.
// Across targets, neither's output or rstd may share a byte with any view of the other (inputs may
// overlap each other). On CUDA, one launch serves targets whose rows fit l2_norm's rows kernel
// (max_rows_kernel_dim elements, 16384 on every device today); a target with longer rows runs as
// its own l2_norm launch in the same dispatch. A target with zero rows is skipped.
// Errors name the target ("first" or "second") and the offending values; nothing is written.
void l2_norm_pair(CommandEncoder& encoder, const L2NormTarget& first, const L2NormTarget& second);

// What one target of l2_norm_pair is compiled for: its dtypes, dim and options.
struct L2NormKernelShape {
  DType input_dtype;
  DType output_dtype;
  std::int64_t dim;
  L2NormOptions options = {};
};

// Compiles ahead of time every kernel l2_norm_pair may pick on `device` for targets of these
// shapes (any row counts, aligned or not), so that later dispatches can be captured into a CUDA
// graph. A no-op on the CPU.
void prewarm_l2_norm_pair(const Device& device, const L2NormKernelShape& first,
                          const L2NormKernelShape& second);

}  // namespace l2norm

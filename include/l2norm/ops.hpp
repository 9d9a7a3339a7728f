// The op: row-wise L2 normalization over the last dimension.
//
//   eps_mode add   (default; the seed, flash-linear-attention):  y = x / sqrt(sum(x^2) + eps)
//   eps_mode clamp (PyTorch F.normalize, ggml):                  y = x / max(sqrt(sum(x^2)), eps)
//   scale != 1:  y = round(round(y) * scale), bit-identical to a separate multiply pass.
//
// Sums are accumulated in f32 whatever the element type. See README "Semantics" for zero rows,
// NaN/Inf, huge and tiny values.
#pragma once

#include <cstdint>
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
// `output`. Both views must have the same shape and dtype, live on the encoder's device and have a
// unit stride in the last dimension; other strides are non-negative and otherwise free (row
// slices of a packed projection are accepted with no copy). A non-empty view needs a non-null,
// element-aligned pointer and a representable extent: (sum((size_i - 1) * stride_i) + 1) elements
// in bytes fit in int64 and do not run past the end of the address space.
// The rows of `output` must be provably disjoint: with its leading dims of size > 1 sorted by
// stride, each stride is at least the elements the dims inside it and the row span,
//   stride_k >= dim + sum_{j < k} (size_j - 1) * stride_j
// (a sufficient rule: a few exotic layouts whose rows happen not to collide are refused).
// `output` may have exactly `input`'s rows (in place: same pointer and shape, same strides in the
// dims of size > 1); otherwise no element of `output` may share a byte with an element of `input`.
// That test is exact (rows that interleave without touching are accepted) and takes O(1) for
// views whose byte ranges do not intersect, O(rows) at most.
// A view with zero rows is a no-op (its pointer is not used); dim == 0 is an error.
// Throws Error(invalid_argument) with a message naming the offending values.
void l2_norm(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
             const L2NormOptions& options = {});

// The seed's flat entry point (dispatch_l2_norm / dispatch_l2_norm_scale): contiguous buffers of
// rows * dim elements. rows == 0 or dim == 0 is an error here, as in the seed.
void l2_norm(CommandEncoder& encoder, const Buffer& input, const Buffer& output, std::int64_t rows,
             std::int64_t dim, const L2NormOptions& options = {});

// Compiles ahead of time every kernel variant l2_norm may pick on `device` for rows of `dim`
// elements of `dtype` with these options (any row count, aligned or not), so that later dispatches
// need no compilation and can be captured into a CUDA graph. A no-op on the CPU.
void prewarm_l2_norm(const Device& device, DType dtype, std::int64_t dim,
                     const L2NormOptions& options = {});

}  // namespace l2norm

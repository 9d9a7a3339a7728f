// The view checks every op shares, and what a validated view pair becomes for the backends. Each
// check throws Error(invalid_argument) with a message that starts with the op's name and names
// the offending values: "l2_norm: input last-dim stride is 2, must be 1 (strides [256, 2])".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "l2norm/device.hpp"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "l2norm/tensor.hpp"
#include "ops/rows.hpp"

namespace l2norm::detail {

[[noreturn]] void invalid_argument(std::string_view op, const std::string& message);
std::string format_dims(std::span<const std::int64_t> values);
std::string format_float(float value);

struct NamedDevice {
  std::string_view name;
  Device device;
};
// Every tensor lives on the first one's device, and that is the encoder's.
void check_devices(std::string_view op, std::span<const NamedDevice> tensors,
                   const Device& encoder_device);
// eps finite and >= 0, scale finite, a known eps_mode.
void check_options(std::string_view op, const L2NormOptions& options);
// f32, f16 or bf16.
void check_dtype(std::string_view op, std::string_view name, DType dtype);
void check_same_shape(std::string_view op, std::string_view a_name, const TensorView& a,
                      std::string_view b_name, const TensorView& b);
// A non-empty view the kernels can walk: a non-null pointer, non-negative strides, a unit stride
// in the last dimension (unless it has one element), an element-aligned pointer.
void check_walkable(std::string_view op, std::string_view name, const TensorView& view);
// A non-empty view whose extent is representable: the elements it spans,
// sum((size_i - 1) * |stride_i|) + 1, times the element size, computed without overflow, fit in
// int64, and the bytes it spans neither start below address 0 nor end past the top of the address
// space. Row offsets and a stride times its size, in elements, then fit in int64, and a row's
// address never wraps. Precedes every check below, which rely on it.
void check_extent(std::string_view op, std::string_view name, const TensorView& view);
// Rows of a view that is written must not share memory with each other. The rule is sufficient,
// not necessary: with the leading dims of size > 1 sorted by stride, each stride is at least the
// elements the dims inside it (and the row itself) span,
//   stride_k >= dim + sum_{j < k} (size_j - 1) * stride_j.
void check_rows_disjoint(std::string_view op, std::string_view name, const TensorView& view);
// `written` (which passed check_rows_disjoint) must not share a byte with `read` unless both have
// identical rows (in place: same pointer and shape, same strides in the dims of size > 1). Exact:
// views whose rows interleave without sharing an element pass. O(1) when the byte spans are
// disjoint or `read` is packed, O(rows of read) at most.
void check_no_overlap(std::string_view op, std::string_view read_name, const TensorView& read,
                      std::string_view written_name, const TensorView& written);
// The same with no exception: `written` shares no byte with `read`, even as an identical view.
void check_disjoint(std::string_view op, std::string_view read_name, const TensorView& read,
                    std::string_view written_name, const TensorView& written);

// Merges leading dims that are contiguous with each other in every view (all of one shape),
// dropping size-1 dims, so that packed tensors reach the backends as a single (rows, row stride)
// pair. Defined for 2, 3 and 4 views.
template <int Views>
RowsLayout<Views> rows_layout(const std::array<const TensorView*, Views>& views);
// The same for an input and an output.
RowLayout row_layout(const TensorView& input, const TensorView& output);
// The most elements (8, 4, 2 or 1, and at most 16 bytes of the widest dtype) that one vector
// access of every view may move: it divides every view's base address, row strides and row
// length, each in that view's bytes.
template <int Views>
int vector_elements(const std::array<const TensorView*, Views>& views,
                    const RowsLayout<Views>& layout);
// The widest input vector (16, 8, 4 or 2 bytes, never below the input's element size) with which
// every row of both views can be read and written. A vector of n input elements reads n * (input
// element size) bytes, which must divide the input's base address, every row stride and the row
// length in bytes; it writes the same n elements of the output, n * (output element size) bytes
// in accesses of at most 16, so min(n * output element size, 16) must divide the output's base
// address, row strides and row length in bytes. Equal dtypes: the widest vector dividing both
// views' addresses, strides and row length.
int vector_bytes(const TensorView& input, const TensorView& output, const RowLayout& layout);

}  // namespace l2norm::detail

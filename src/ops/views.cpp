#include "ops/views.hpp"

#include <algorithm>
#include <array>
#include <sstream>

#include "l2norm/error.hpp"

namespace l2norm::detail {

void invalid_argument(std::string_view op, const std::string& message) {
  throw Error(ErrorCode::invalid_argument, std::string(op) + ": " + message);
}

std::string format_dims(std::span<const std::int64_t> values) {
  std::ostringstream text;
  text << '[';
  for (std::size_t i = 0; i < values.size(); ++i) text << (i ? ", " : "") << values[i];
  text << ']';
  return text.str();
}

std::string format_float(float value) {
  std::ostringstream text;
  text.precision(9);
  text << value;
  return text.str();
}

void check_devices(std::string_view op, std::span<const NamedDevice> tensors,
                   const Device& encoder_device) {
  const NamedDevice& first = tensors.front();
  for (const NamedDevice& tensor : tensors.subspan(1)) {
    if (tensor.device != first.device) {
      invalid_argument(op, std::string(tensor.name) + " is on " + tensor.device.name() + " but " +
                               std::string(first.name) + " is on " + first.device.name());
    }
  }
  if (first.device != encoder_device) {
    invalid_argument(op, "tensors are on " + first.device.name() + " but the encoder records for " +
                             encoder_device.name());
  }
}

void check_dtype(std::string_view op, std::string_view name, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16) {
    invalid_argument(op, std::string(name) + " has unsupported dtype code " +
                             std::to_string(int(dtype)) + " (f32, f16, bf16 are)");
  }
}

void check_same_shape(std::string_view op, std::string_view a_name, const TensorView& a,
                      std::string_view b_name, const TensorView& b) {
  if (!std::ranges::equal(a.shape(), b.shape())) {
    invalid_argument(op, std::string(a_name) + " shape " + format_dims(a.shape()) + " and " +
                             std::string(b_name) + " shape " + format_dims(b.shape()) + " differ");
  }
}

void check_walkable(std::string_view op, std::string_view name, const TensorView& view) {
  for (int i = 0; i < view.rank(); ++i) {
    if (view.stride(i) < 0) {
      invalid_argument(op, std::string(name) + " stride " + std::to_string(view.stride(i)) +
                               " of dim " + std::to_string(i) + " is negative (strides " +
                               format_dims(view.strides()) + ")");
    }
  }
  if (view.dim() > 1 && view.stride(view.rank() - 1) != 1) {
    invalid_argument(op, std::string(name) + " last-dim stride is " +
                             std::to_string(view.stride(view.rank() - 1)) +
                             ", must be 1 (strides " + format_dims(view.strides()) + ")");
  }
  if (reinterpret_cast<std::uintptr_t>(view.data()) % dtype_size(view.dtype()) != 0) {
    invalid_argument(op, std::string(name) + " pointer is not aligned to its " +
                             std::to_string(dtype_size(view.dtype())) + "-byte elements");
  }
}

// With the leading dims sorted by stride, each stride must step past everything the inner dims
// (and the row itself) cover.
void check_rows_disjoint(std::string_view op, std::string_view name, const TensorView& view) {
  // At most three leading dims: an insertion sort by stride keeps this obvious.
  std::array<int, kMaxRank> order{};
  int count = 0;
  for (int i = 0; i < view.rank() - 1; ++i) {
    if (view.size(i) <= 1) continue;
    int k = count++;
    for (; k > 0 && view.stride(order[std::size_t(k - 1)]) > view.stride(i); --k) {
      order[std::size_t(k)] = order[std::size_t(k - 1)];
    }
    order[std::size_t(k)] = i;
  }
  std::int64_t covered = view.dim();
  for (int k = 0; k < count; ++k) {
    const int i = order[std::size_t(k)];
    if (view.stride(i) < covered) {
      invalid_argument(op, std::string(name) + " rows overlap each other (shape " +
                               format_dims(view.shape()) + ", strides " +
                               format_dims(view.strides()) + ")");
    }
    covered = view.stride(i) * (view.size(i) - 1) + covered;
  }
}

namespace {

// Byte range [first, last) a view touches; the view has no zero-sized dim.
struct ByteSpan {
  std::uintptr_t first;
  std::uintptr_t last;
};

ByteSpan byte_span(const TensorView& view) {
  std::int64_t last_element = 0;
  for (int i = 0; i < view.rank(); ++i) last_element += (view.size(i) - 1) * view.stride(i);
  const auto first = reinterpret_cast<std::uintptr_t>(view.data());
  const auto element_bytes = std::uintptr_t(dtype_size(view.dtype()));
  return {first, first + (std::uintptr_t(last_element) + 1) * element_bytes};
}

bool same_view(const TensorView& a, const TensorView& b) {
  return a.data() == b.data() && std::ranges::equal(a.shape(), b.shape()) &&
         std::ranges::equal(a.strides(), b.strides());
}

}  // namespace

void check_no_overlap(std::string_view op, std::string_view read_name, const TensorView& read,
                      std::string_view written_name, const TensorView& written) {
  if (same_view(read, written)) return;
  const ByteSpan a = byte_span(read);
  const ByteSpan b = byte_span(written);
  if (a.first < b.last && b.first < a.last) {
    invalid_argument(op, std::string(written_name) + " overlaps " + std::string(read_name) +
                             " without being the same view (in place needs identical pointer, "
                             "shape and strides)");
  }
}

template <int Views>
RowsLayout<Views> rows_layout(const std::array<const TensorView*, Views>& views) {
  struct Dim {
    std::int64_t size;
    std::array<std::int64_t, Views> strides;
  };
  const TensorView& first = *views[0];
  std::array<Dim, kMaxRank> dims{};
  int count = 0;
  for (int i = 0; i < first.rank() - 1; ++i) {
    if (first.size(i) == 1) continue;
    Dim next{first.size(i), {}};
    for (int v = 0; v < Views; ++v) next.strides[std::size_t(v)] = views[std::size_t(v)]->stride(i);
    if (count > 0) {
      Dim& outer = dims[std::size_t(count - 1)];
      bool contiguous = true;
      for (int v = 0; v < Views; ++v) {
        const auto index = std::size_t(v);
        contiguous = contiguous && outer.strides[index] == next.size * next.strides[index];
      }
      if (contiguous) {
        outer = {outer.size * next.size, next.strides};
        continue;
      }
    }
    dims[std::size_t(count++)] = next;
  }
  RowsLayout<Views> layout;
  if (count == 0) {
    layout.outer_rank = 1;
    layout.outer_sizes[0] = 1;
    for (int v = 0; v < Views; ++v)
      layout.strides[std::size_t(v)][0] = views[std::size_t(v)]->dim();
    return layout;
  }
  layout.outer_rank = count;
  for (int i = 0; i < count; ++i) {
    layout.outer_sizes[std::size_t(i)] = dims[std::size_t(i)].size;
    for (int v = 0; v < Views; ++v) {
      layout.strides[std::size_t(v)][std::size_t(i)] = dims[std::size_t(i)].strides[std::size_t(v)];
    }
  }
  return layout;
}

template RowsLayout<2> rows_layout<2>(const std::array<const TensorView*, 2>&);
template RowsLayout<3> rows_layout<3>(const std::array<const TensorView*, 3>&);
template RowsLayout<4> rows_layout<4>(const std::array<const TensorView*, 4>&);

RowLayout row_layout(const TensorView& input, const TensorView& output) {
  const RowsLayout<2> rows = rows_layout<2>({&input, &output});
  RowLayout layout;
  layout.outer_rank = rows.outer_rank;
  layout.outer_sizes = rows.outer_sizes;
  layout.input_strides = rows.strides[0];
  layout.output_strides = rows.strides[1];
  return layout;
}

template <int Views>
int vector_elements(const std::array<const TensorView*, Views>& views,
                    const RowsLayout<Views>& layout) {
  std::size_t widest = 1;
  for (const TensorView* view : views) widest = std::max(widest, dtype_size(view->dtype()));
  int elements = static_cast<int>(16 / widest);
  const auto divides = [&](int count) {
    for (int v = 0; v < Views; ++v) {
      const TensorView& view = *views[std::size_t(v)];
      const auto bytes = std::uint64_t(count) * dtype_size(view.dtype());
      std::uint64_t alignment = reinterpret_cast<std::uintptr_t>(view.data()) |
                                std::uint64_t(view.dim()) * dtype_size(view.dtype());
      for (int i = 0; i < layout.outer_rank; ++i) {
        if (layout.outer_sizes[std::size_t(i)] == 1) continue;
        alignment |= std::uint64_t(layout.strides[std::size_t(v)][std::size_t(i)]) *
                     dtype_size(view.dtype());
      }
      if (alignment % bytes != 0) return false;
    }
    return true;
  };
  while (elements > 1 && !divides(elements)) elements /= 2;
  return elements;
}

template int vector_elements<2>(const std::array<const TensorView*, 2>&, const RowsLayout<2>&);
template int vector_elements<3>(const std::array<const TensorView*, 3>&, const RowsLayout<3>&);
template int vector_elements<4>(const std::array<const TensorView*, 4>&, const RowsLayout<4>&);

int vector_bytes(const TensorView& input, const TensorView& output, const RowLayout& layout) {
  const auto element_bytes = std::uint64_t(dtype_size(input.dtype()));
  std::uint64_t alignment = reinterpret_cast<std::uintptr_t>(input.data()) |
                            reinterpret_cast<std::uintptr_t>(output.data()) |
                            std::uint64_t(input.dim()) * element_bytes;
  for (int i = 0; i < layout.outer_rank; ++i) {
    if (layout.outer_sizes[std::size_t(i)] == 1) continue;
    alignment |= std::uint64_t(layout.input_strides[std::size_t(i)]) * element_bytes;
    alignment |= std::uint64_t(layout.output_strides[std::size_t(i)]) * element_bytes;
  }
  int bytes = 16;
  while (bytes > int(element_bytes) && alignment % std::uint64_t(bytes) != 0) bytes /= 2;
  return bytes;
}

}  // namespace l2norm::detail

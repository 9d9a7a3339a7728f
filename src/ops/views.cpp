#include "ops/views.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "l2norm/error.hpp"

namespace l2norm::detail {

void invalid_argument(std::string_view op, const std::string& message) {
  throw Error(ErrorCode::invalid_argument, std::string(op) + ": " + message);
}

// Messages are built without C++ streams: their number formatting follows the global C++ locale
// (a caller's digit grouping would turn 1024 into "1,024").
std::string format_dims(std::span<const std::int64_t> values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(values[i]);
  }
  return text + "]";
}

std::string format_float(float value) {
  char text[32];
  const auto result = std::to_chars(text, text + sizeof text, value, std::chars_format::general, 9);
  return std::string(text, result.ptr);
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

void check_options(std::string_view op, const L2NormOptions& options) {
  if (!std::isfinite(options.eps) || options.eps < 0.0f) {
    invalid_argument(op, "eps must be finite and >= 0, got " + format_float(options.eps));
  }
  if (!std::isfinite(options.scale)) {
    invalid_argument(op, "scale must be finite, got " + format_float(options.scale));
  }
  if (options.eps_mode != EpsMode::add && options.eps_mode != EpsMode::clamp) {
    invalid_argument(op, "unknown eps_mode code " + std::to_string(int(options.eps_mode)));
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
  if (view.data() == nullptr) {
    invalid_argument(
        op, std::string(name) + " data pointer is null (shape " + format_dims(view.shape()) + ")");
  }
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

namespace {

// Byte range [first, last) a non-empty view touches.
struct ByteSpan {
  std::uintptr_t first;
  std::uintptr_t last;
};

// The byte span of a non-empty view, or false when its extent is not representable: elements
// below and above the data pointer, their sum plus one, or that count in bytes overflows int64,
// or the span starts below address 0 or ends past the top of the address space. Every quantity
// is checked, so nothing here wraps.
enum class SpanStatus { ok, too_large, wraps };

SpanStatus byte_span(const TensorView& view, ByteSpan& span) {
  std::int64_t below = 0;  // elements before data (negative strides)
  std::int64_t above = 0;  // elements after data up to the last one
  for (int i = 0; i < view.rank(); ++i) {
    if (view.size(i) <= 1) continue;
    std::int64_t reach = 0;
    if (__builtin_mul_overflow(view.size(i) - 1, view.stride(i), &reach)) {
      return SpanStatus::too_large;
    }
    const bool overflow = reach < 0 ? __builtin_sub_overflow(below, reach, &below)
                                    : __builtin_add_overflow(above, reach, &above);
    if (overflow) return SpanStatus::too_large;
  }
  std::int64_t elements = 0, bytes = 0, below_bytes = 0;
  if (__builtin_add_overflow(below, above, &elements) ||
      __builtin_add_overflow(elements, std::int64_t{1}, &elements) ||
      __builtin_mul_overflow(elements, std::int64_t(dtype_size(view.dtype())), &bytes) ||
      __builtin_mul_overflow(below, std::int64_t(dtype_size(view.dtype())), &below_bytes)) {
    return SpanStatus::too_large;
  }
  const auto address = reinterpret_cast<std::uintptr_t>(view.data());
  if (address < std::uintptr_t(below_bytes)) return SpanStatus::wraps;
  span.first = address - std::uintptr_t(below_bytes);
  if (__builtin_add_overflow(span.first, std::uintptr_t(bytes), &span.last)) {
    return SpanStatus::wraps;
  }
  return SpanStatus::ok;
}

// The span of a view that passed check_extent.
ByteSpan checked_byte_span(const TensorView& view) {
  ByteSpan span{};
  byte_span(view, span);
  return span;
}

std::string describe_layout(const TensorView& view) {
  return "shape " + format_dims(view.shape()) + ", strides " + format_dims(view.strides()) + ", " +
         std::to_string(dtype_size(view.dtype())) + "-byte elements";
}

// A leading dim (one that indexes rows) of size > 1.
struct LeadingDim {
  std::int64_t size;
  std::int64_t stride;
};

struct LeadingDims {
  std::array<LeadingDim, kMaxRank> dims{};
  int count = 0;
};

// The view's leading dims of size > 1, sorted by stride (at most three: an insertion sort keeps
// this obvious).
LeadingDims sorted_leading_dims(const TensorView& view) {
  LeadingDims sorted;
  for (int i = 0; i < view.rank() - 1; ++i) {
    if (view.size(i) <= 1) continue;
    int k = sorted.count++;
    for (; k > 0 && sorted.dims[std::size_t(k - 1)].stride > view.stride(i); --k) {
      sorted.dims[std::size_t(k)] = sorted.dims[std::size_t(k - 1)];
    }
    sorted.dims[std::size_t(k)] = {view.size(i), view.stride(i)};
  }
  return sorted;
}

}  // namespace

void check_extent(std::string_view op, std::string_view name, const TensorView& view) {
  ByteSpan span{};
  switch (byte_span(view, span)) {
    case SpanStatus::ok:
      return;
    case SpanStatus::too_large:
      invalid_argument(op, std::string(name) + " spans more than " +
                               std::to_string(std::numeric_limits<std::int64_t>::max()) +
                               " bytes (" + describe_layout(view) + ")");
    case SpanStatus::wraps: {
      char address[32];
      std::snprintf(address, sizeof address, "%p", view.data());
      invalid_argument(op, std::string(name) + " at " + address +
                               " reaches past the end of the address space (" +
                               describe_layout(view) + ")");
    }
  }
}

// With the leading dims sorted by stride, each stride must step past everything the inner dims
// (and the row itself) cover. Under this rule the row offsets, taken in the order of the sorted
// dims, form a mixed-radix number system: strictly increasing, so that check_no_overlap can find
// the row at or below any offset digit by digit.
void check_rows_disjoint(std::string_view op, std::string_view name, const TensorView& view) {
  const LeadingDims sorted = sorted_leading_dims(view);
  std::int64_t covered = view.dim();
  for (int k = 0; k < sorted.count; ++k) {
    const LeadingDim& dim = sorted.dims[std::size_t(k)];
    if (dim.stride < covered) {
      invalid_argument(op, std::string(name) + " rows overlap each other (shape " +
                               format_dims(view.shape()) + ", strides " +
                               format_dims(view.strides()) +
                               "): sorted by stride, each leading dim of size > 1 needs a stride "
                               "of at least the elements that the row and the dims inside it "
                               "span, here stride " +
                               std::to_string(dim.stride) + " < " + std::to_string(covered));
    }
    covered = dim.stride * (dim.size - 1) + covered;  // within the checked extent
  }
}

namespace {

// Identical rows: the same pointer and shape, and the same stride in every dim of size > 1 (a
// size-1 dim's stride never moves a row).
bool same_rows(const TensorView& a, const TensorView& b) {
  if (a.data() != b.data() || a.dtype() != b.dtype() || !std::ranges::equal(a.shape(), b.shape())) {
    return false;
  }
  for (int i = 0; i < a.rank(); ++i) {
    if (a.size(i) > 1 && a.stride(i) != b.stride(i)) return false;
  }
  return true;
}

// Whether some row of `written` shares a byte with [first, last). The rows of `written` satisfy
// check_rows_disjoint, so its row offsets are a mixed-radix number system in the sorted dims: the
// greedy choice of each digit, outermost first, yields the last row starting at or below
// last - 1, and only that row can reach `first` (every earlier row ends before it starts).
bool written_row_meets(const TensorView& written, const LeadingDims& dims, std::uintptr_t first,
                       std::uintptr_t last) {
  const auto base = reinterpret_cast<std::uintptr_t>(written.data());
  if (last <= base) return false;
  const auto element_bytes = std::uintptr_t(dtype_size(written.dtype()));
  std::uintptr_t rest = last - 1 - base;
  std::uintptr_t start = base;
  for (int k = dims.count - 1; k >= 0; --k) {
    const std::uintptr_t step = std::uintptr_t(dims.dims[std::size_t(k)].stride) * element_bytes;
    const std::uintptr_t index =
        std::min(std::uintptr_t(dims.dims[std::size_t(k)].size - 1), rest / step);
    rest -= index * step;
    start += index * step;
  }
  return start + std::uintptr_t(written.dim()) * element_bytes > first;
}

// Whether any row of `read` shares a byte with any row of `written` (whose rows satisfy
// check_rows_disjoint). Leading dims of `read` whose rows lie back to back merge into longer
// intervals (a packed view is one interval); the remaining intervals are each tested in
// O(rank), so the work is O(rows of read) at most.
bool rows_intersect(const TensorView& read, const TensorView& written) {
  const LeadingDims read_dims = sorted_leading_dims(read);
  const LeadingDims written_dims = sorted_leading_dims(written);
  std::int64_t run = read.dim();  // elements of one interval
  int merged = 0;
  while (merged < read_dims.count && read_dims.dims[std::size_t(merged)].stride == run) {
    run *= read_dims.dims[std::size_t(merged)].size;  // within the checked extent
    ++merged;
  }
  const auto element_bytes = std::uintptr_t(dtype_size(read.dtype()));
  const auto base = reinterpret_cast<std::uintptr_t>(read.data());
  const std::uintptr_t length = std::uintptr_t(run) * element_bytes;
  // An odometer over the unmerged dims, innermost (smallest stride) fastest.
  std::array<std::int64_t, kMaxRank> index{};
  std::uintptr_t offset = 0;
  for (;;) {
    if (written_row_meets(written, written_dims, base + offset, base + offset + length)) {
      return true;
    }
    int k = merged;
    for (; k < read_dims.count; ++k) {
      const LeadingDim& dim = read_dims.dims[std::size_t(k)];
      const std::uintptr_t step = std::uintptr_t(dim.stride) * element_bytes;
      if (++index[std::size_t(k)] < dim.size) {
        offset += step;
        break;
      }
      offset -= std::uintptr_t(dim.size - 1) * step;
      index[std::size_t(k)] = 0;
    }
    if (k == read_dims.count) return false;
  }
}

}  // namespace

void check_no_overlap(std::string_view op, std::string_view read_name, const TensorView& read,
                      std::string_view written_name, const TensorView& written) {
  if (same_rows(read, written)) return;
  const ByteSpan a = checked_byte_span(read);
  const ByteSpan b = checked_byte_span(written);
  if (a.last <= b.first || b.last <= a.first) return;
  if (rows_intersect(read, written)) {
    invalid_argument(op, std::string(written_name) + " overlaps " + std::string(read_name) +
                             " without being the same view (in place needs identical pointer, "
                             "shape and strides)");
  }
}

void check_disjoint(std::string_view op, std::string_view read_name, const TensorView& read,
                    std::string_view written_name, const TensorView& written) {
  if (same_rows(read, written)) {
    invalid_argument(op, std::string(written_name) + " is the same memory as " +
                             std::string(read_name) + " (they must share no byte)");
  }
  check_no_overlap(op, read_name, read, written_name, written);
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
  // Every byte offset a view's rows start at, and its row length, OR-ed: a power of two divides
  // them all exactly when it divides this.
  const auto alignment = [&](const TensorView& view,
                             const std::array<std::int64_t, kMaxOuterRank>& strides) {
    const auto element_bytes = std::uint64_t(dtype_size(view.dtype()));
    std::uint64_t bits =
        reinterpret_cast<std::uintptr_t>(view.data()) | std::uint64_t(view.dim()) * element_bytes;
    for (int i = 0; i < layout.outer_rank; ++i) {
      if (layout.outer_sizes[std::size_t(i)] == 1) continue;
      bits |= std::uint64_t(strides[std::size_t(i)]) * element_bytes;
    }
    return bits;
  };
  const std::uint64_t input_alignment = alignment(input, layout.input_strides);
  const std::uint64_t output_alignment = alignment(output, layout.output_strides);
  const auto input_bytes = std::uint64_t(dtype_size(input.dtype()));
  const auto output_bytes = std::uint64_t(dtype_size(output.dtype()));
  std::uint64_t elements = 16 / input_bytes;
  while (elements > 1 &&
         (input_alignment % (elements * input_bytes) != 0 ||
          output_alignment % std::min<std::uint64_t>(elements * output_bytes, 16) != 0)) {
    elements /= 2;
  }
  return int(elements * input_bytes);
}

}  // namespace l2norm::detail

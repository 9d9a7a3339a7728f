// The op layer: every check happens here, once, before a backend sees the call. Backends receive a
// fully described L2NormCall and only pick and run kernels.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <sstream>
#include <string>

#include "core/backend.hpp"
#include "l2norm/error.hpp"
#include "l2norm/ops.hpp"

namespace l2norm {
namespace {

[[noreturn]] void invalid(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, "l2_norm: " + message);
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

void check_devices(const CommandEncoder& encoder, Device input, Device output) {
  if (output != input) {
    invalid("output is on " + output.name() + " but input is on " + input.name());
  }
  if (input != encoder.device()) {
    invalid("tensors are on " + input.name() + " but the encoder records for " +
            encoder.device().name());
  }
}

void check_dtypes(DType input, DType output) {
  if (input != output) {
    invalid("input dtype " + std::string(dtype_name(input)) + " and output dtype " +
            std::string(dtype_name(output)) + " differ");
  }
  if (input != DType::f32 && input != DType::f16 && input != DType::bf16) {
    invalid("unsupported dtype code " + std::to_string(int(input)) + " (f32, f16, bf16 are)");
  }
}

void check_options(const L2NormOptions& options) {
  if (!std::isfinite(options.eps) || options.eps < 0.0f) {
    invalid("eps must be finite and >= 0, got " + format_float(options.eps));
  }
  if (!std::isfinite(options.scale)) {
    invalid("scale must be finite, got " + format_float(options.scale));
  }
  if (options.eps_mode != EpsMode::add && options.eps_mode != EpsMode::clamp) {
    invalid("unknown eps_mode code " + std::to_string(int(options.eps_mode)));
  }
}

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

void check_strides(const TensorView& view, const char* name) {
  for (int i = 0; i < view.rank(); ++i) {
    if (view.stride(i) < 0) {
      invalid(std::string(name) + " stride " + std::to_string(view.stride(i)) + " of dim " +
              std::to_string(i) + " is negative (strides " + format_dims(view.strides()) + ")");
    }
  }
  if (view.dim() > 1 && view.stride(view.rank() - 1) != 1) {
    invalid(std::string(name) + " last-dim stride is " +
            std::to_string(view.stride(view.rank() - 1)) + ", must be 1 (strides " +
            format_dims(view.strides()) + ")");
  }
  if (reinterpret_cast<std::uintptr_t>(view.data()) % dtype_size(view.dtype()) != 0) {
    invalid(std::string(name) + " pointer is not aligned to its " +
            std::to_string(dtype_size(view.dtype())) + "-byte elements");
  }
}

// Output rows written by different threads must not share memory: with the leading dims sorted by
// stride, each stride must step past everything the inner dims (and the row itself) cover.
void check_output_rows_disjoint(const TensorView& output) {
  // At most three leading dims: an insertion sort by stride keeps this obvious.
  std::array<int, kMaxRank> order{};
  int count = 0;
  for (int i = 0; i < output.rank() - 1; ++i) {
    if (output.size(i) <= 1) continue;
    int k = count++;
    for (; k > 0 && output.stride(order[std::size_t(k - 1)]) > output.stride(i); --k) {
      order[std::size_t(k)] = order[std::size_t(k - 1)];
    }
    order[std::size_t(k)] = i;
  }
  std::int64_t covered = output.dim();
  for (int k = 0; k < count; ++k) {
    const int i = order[std::size_t(k)];
    if (output.stride(i) < covered) {
      invalid("output rows overlap each other (shape " + format_dims(output.shape()) +
              ", strides " + format_dims(output.strides()) + ")");
    }
    covered = output.stride(i) * (output.size(i) - 1) + covered;
  }
}

// Merges leading dims that are contiguous with each other in both views, dropping size-1 dims,
// so that packed tensors reach the backends as a single (rows, row stride) pair.
detail::RowLayout row_layout(const TensorView& input, const TensorView& output) {
  struct Dim {
    std::int64_t size, input_stride, output_stride;
  };
  std::array<Dim, kMaxRank> dims{};
  int count = 0;
  for (int i = 0; i < input.rank() - 1; ++i) {
    if (input.size(i) == 1) continue;
    const Dim next{input.size(i), input.stride(i), output.stride(i)};
    if (count > 0) {
      Dim& outer = dims[std::size_t(count - 1)];
      if (outer.input_stride == next.size * next.input_stride &&
          outer.output_stride == next.size * next.output_stride) {
        outer = {outer.size * next.size, next.input_stride, next.output_stride};
        continue;
      }
    }
    dims[std::size_t(count++)] = next;
  }
  detail::RowLayout layout;
  if (count == 0) {
    layout.outer_rank = 1;
    layout.outer_sizes[0] = 1;
    layout.input_strides[0] = input.dim();
    layout.output_strides[0] = output.dim();
    return layout;
  }
  layout.outer_rank = count;
  for (int i = 0; i < count; ++i) {
    layout.outer_sizes[std::size_t(i)] = dims[std::size_t(i)].size;
    layout.input_strides[std::size_t(i)] = dims[std::size_t(i)].input_stride;
    layout.output_strides[std::size_t(i)] = dims[std::size_t(i)].output_stride;
  }
  return layout;
}

// The widest vector (16, 8, 4 or 2 bytes, never below the element size) with which every row of
// both views can be read and written: it must divide the base addresses, every row stride and
// the row length, all in bytes.
int vector_bytes(const TensorView& input, const TensorView& output,
                 const detail::RowLayout& layout) {
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

void dispatch(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
              const L2NormOptions& options) {
  const detail::RowLayout layout = row_layout(input, output);
  const detail::L2NormCall call{
      .input = input.data(),
      .output = output.data(),
      .dtype = input.dtype(),
      .rows = input.rows(),
      .dim = input.dim(),
      .layout = layout,
      .eps = options.eps,
      .scale = options.scale,
      .scaled = options.scale != 1.0f,
      .eps_mode = options.eps_mode,
      .vector_bytes = vector_bytes(input, output, layout),
  };
  std::string variant = encoder.impl().l2_norm(call);
  encoder.record({"l2_norm", std::move(variant), call.dtype, call.rows, call.dim});
}

}  // namespace

std::string_view eps_mode_name(EpsMode mode) noexcept {
  return mode == EpsMode::add ? "add" : mode == EpsMode::clamp ? "clamp" : "?";
}

EpsMode parse_eps_mode(std::string_view text) {
  if (text == "add") return EpsMode::add;
  if (text == "clamp") return EpsMode::clamp;
  throw Error(ErrorCode::invalid_argument,
              "unknown eps mode '" + std::string(text) + "' (expected add or clamp)");
}

void l2_norm(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
             const L2NormOptions& options) {
  check_devices(encoder, input.device(), output.device());
  check_dtypes(input.dtype(), output.dtype());
  if (!std::ranges::equal(input.shape(), output.shape())) {
    invalid("input shape " + format_dims(input.shape()) + " and output shape " +
            format_dims(output.shape()) + " differ");
  }
  if (input.dim() == 0) invalid("dim is 0 (shape " + format_dims(input.shape()) + ")");
  check_options(options);
  if (input.rows() == 0) return;  // an empty batch (e.g. zero tokens) is valid and does nothing
  check_strides(input, "input");
  check_strides(output, "output");
  check_output_rows_disjoint(output);
  if (!same_view(input, output)) {
    const ByteSpan in = byte_span(input);
    const ByteSpan out = byte_span(output);
    if (in.first < out.last && out.first < in.last) {
      invalid(
          "output overlaps input without being the same view (in place needs identical "
          "pointer, shape and strides)");
    }
  }
  dispatch(encoder, input, output, options);
}

void l2_norm(CommandEncoder& encoder, const Buffer& input, const Buffer& output, std::int64_t rows,
             std::int64_t dim, const L2NormOptions& options) {
  if (rows <= 0 || dim <= 0) {
    invalid("rows and dim must be positive, got rows=" + std::to_string(rows) +
            " dim=" + std::to_string(dim));
  }
  std::int64_t expected = 0;
  if (__builtin_mul_overflow(rows, dim, &expected)) {
    invalid("rows(" + std::to_string(rows) + ") * dim(" + std::to_string(dim) +
            ") overflows a 64-bit element count");
  }
  const auto check_count = [&](const Buffer& buffer, const char* name) {
    if (buffer.count() != expected) {
      invalid(std::string(name) + " has " + std::to_string(buffer.count()) +
              " elements, expected rows(" + std::to_string(rows) + ") * dim(" +
              std::to_string(dim) + ") = " + std::to_string(expected));
    }
  };
  check_count(input, "input");
  check_count(output, "output");
  check_dtypes(input.dtype(), output.dtype());
  check_devices(encoder, input.device(), output.device());
  check_options(options);
  const std::array<std::int64_t, 2> shape{rows, dim};
  dispatch(encoder, TensorView(input.data(), input.dtype(), input.device(), shape),
           TensorView(output.data(), output.dtype(), output.device(), shape), options);
}

void prewarm_l2_norm(const Device& device, DType dtype, std::int64_t dim,
                     const L2NormOptions& options) {
  if (dim <= 0) invalid("prewarm: dim must be positive, got " + std::to_string(dim));
  check_dtypes(dtype, dtype);
  check_options(options);
  require_device(device);
  if (device.is_cuda()) detail::cuda::prewarm_l2_norm(device.index(), dtype, dim, options);
}

}  // namespace l2norm

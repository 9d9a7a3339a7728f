// The l2_norm op: validates a call once, describes it as an L2NormCall and hands it to the
// encoder's backend (the entry points declared in l2_norm_call.hpp).
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "l2norm/error.hpp"
#include "l2norm/ops.hpp"
#include "ops/dispatch.hpp"
#include "ops/l2_norm_call.hpp"
#include "ops/views.hpp"

namespace l2norm {
namespace {

constexpr std::string_view kOp = "l2_norm";

[[noreturn]] void invalid(const std::string& message) {
  detail::invalid_argument(kOp, message);
}

// Each of f32, f16, bf16; the two may differ (the output is rounded once to its own dtype).
void check_dtypes(DType input, DType output) {
  detail::check_dtype(kOp, "input", input);
  detail::check_dtype(kOp, "output", output);
}

// In place (the output at the input's address) overwrites each element where it was read, which
// holds only when both have one element size and layout: one dtype. Any other view at the input's
// address overlaps it; this names the dtypes, the cause the overlap check would not.
void check_in_place_dtypes(const TensorView& input, const TensorView& output) {
  if (output.data() == input.data() && output.dtype() != input.dtype()) {
    invalid("output is the input in place but their dtypes differ (input " +
            std::string(dtype_name(input.dtype())) + ", output " +
            std::string(dtype_name(output.dtype())) + "); in place needs one dtype");
  }
}

void check_devices(const CommandEncoder& encoder, Device input, Device output) {
  const std::array<detail::NamedDevice, 2> tensors{{{"input", input}, {"output", output}}};
  detail::check_devices(kOp, tensors, encoder.device());
}

// Describes the validated views as an L2NormCall and hands it to the encoder's backend; `rstd`,
// when given, receives each row's reciprocal norm.
void dispatch(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
              const L2NormOptions& options, const TensorView* rstd = nullptr) {
  detail::dispatch(encoder, "l2_norm", detail::make_l2_norm_call(input, output, options, rstd));
}

// rstd as the overload with rstd describes it: f32, 1-D, one value per row of the input, on the
// encoder's device (checked with the other tensors).
void check_rstd_shape(const TensorView& input, const TensorView& rstd) {
  if (rstd.dtype() != DType::f32) {
    invalid("rstd dtype " + std::string(dtype_name(rstd.dtype())) + " must be f32");
  }
  if (rstd.rank() != 1) {
    invalid("rstd must be 1-D with one value per row, got shape " +
            detail::format_dims(rstd.shape()));
  }
  if (rstd.size(0) != input.rows()) {
    invalid("rstd has " + std::to_string(rstd.size(0)) +
            " values, expected one per row: " + std::to_string(input.rows()) +
            " rows in input shape " + detail::format_dims(input.shape()));
  }
}

// The walk the backends do over rstd (element row * stride for row < rows, rows >= 1) is valid and
// touches memory no other tensor of the call holds. A zero stride would make every row write the
// same value, so it is allowed only for a single row.
void check_rstd_memory(const TensorView& rstd, const TensorView& input, const TensorView& output) {
  const std::int64_t rows = rstd.size(0);
  const std::int64_t stride = rstd.stride(0);
  if (stride < 0) invalid("rstd stride " + std::to_string(stride) + " is negative");
  if (stride == 0 && rows > 1) {
    invalid("rstd stride is 0 for " + std::to_string(rows) +
            " rows (every row would write one value; 0 is allowed for a single row)");
  }
  if (rstd.data() == nullptr)
    invalid("rstd data pointer is null (" + std::to_string(rows) + " rows)");
  if (reinterpret_cast<std::uintptr_t>(rstd.data()) % sizeof(float) != 0) {
    invalid("rstd pointer is not aligned to its 4-byte elements");
  }
  std::int64_t last = 0;
  if (__builtin_mul_overflow(rows - 1, stride, &last) || last > INT64_MAX / 4 - 1) {
    invalid("rstd stride " + std::to_string(stride) + " times " + std::to_string(rows - 1) +
            " rows overflows a 64-bit byte offset");
  }
  const auto first = reinterpret_cast<std::uintptr_t>(rstd.data());
  const std::uintptr_t end = first + (std::uintptr_t(last) + 1) * sizeof(float);
  const auto overlaps = [&](std::string_view name, const TensorView& view) {
    std::int64_t view_last = 0;
    for (int i = 0; i < view.rank(); ++i) view_last += (view.size(i) - 1) * view.stride(i);
    const auto view_first = reinterpret_cast<std::uintptr_t>(view.data());
    const std::uintptr_t view_end =
        view_first + (std::uintptr_t(view_last) + 1) * dtype_size(view.dtype());
    if (first < view_end && view_first < end) {
      invalid("rstd overlaps " + std::string(name) +
              " (rstd must share no memory with input or output)");
    }
  };
  overlaps("input", input);
  overlaps("output", output);
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

namespace {

// The checks of the tensor form (devices are checked by the caller, with every tensor of the
// call). Returns false for an empty batch (e.g. zero tokens), which is valid and does nothing.
bool check_views(const TensorView& input, const TensorView& output, const L2NormOptions& options,
                 const TensorView* rstd) {
  check_dtypes(input.dtype(), output.dtype());
  detail::check_same_shape(kOp, "input", input, "output", output);
  if (input.dim() == 0) invalid("dim is 0 (shape " + detail::format_dims(input.shape()) + ")");
  if (rstd != nullptr) check_rstd_shape(input, *rstd);
  detail::check_options(kOp, options);
  if (input.rows() == 0) return false;
  detail::check_walkable(kOp, "input", input);
  detail::check_walkable(kOp, "output", output);
  detail::check_extent(kOp, "input", input);
  detail::check_extent(kOp, "output", output);
  detail::check_rows_disjoint(kOp, "output", output);
  check_in_place_dtypes(input, output);
  detail::check_no_overlap(kOp, "input", input, "output", output);
  if (rstd != nullptr) check_rstd_memory(*rstd, input, output);
  return true;
}

}  // namespace

void l2_norm(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
             const L2NormOptions& options) {
  check_devices(encoder, input.device(), output.device());
  if (check_views(input, output, options, nullptr)) dispatch(encoder, input, output, options);
}

void l2_norm(CommandEncoder& encoder, const TensorView& input, const TensorView& output,
             const TensorView& rstd, const L2NormOptions& options) {
  const std::array<detail::NamedDevice, 3> tensors{
      {{"input", input.device()}, {"output", output.device()}, {"rstd", rstd.device()}}};
  detail::check_devices(kOp, tensors, encoder.device());
  if (check_views(input, output, options, &rstd)) dispatch(encoder, input, output, options, &rstd);
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
  detail::check_options(kOp, options);
  // Buffers are distinct allocations, or one buffer (in place, one dtype).
  const std::array<std::int64_t, 2> shape{rows, dim};
  dispatch(encoder, TensorView(input.data(), input.dtype(), input.device(), shape),
           TensorView(output.data(), output.dtype(), output.device(), shape), options);
}

namespace detail {

bool check_l2_norm_views(const TensorView& input, const TensorView& output,
                         const L2NormOptions& options, const TensorView* rstd) {
  return check_views(input, output, options, rstd);
}

L2NormCall make_l2_norm_call(const TensorView& input, const TensorView& output,
                             const L2NormOptions& options, const TensorView* rstd) {
  const RowLayout layout = row_layout(input, output);
  return L2NormCall{
      .input = input.data(),
      .output = output.data(),
      .dtype = input.dtype(),
      .output_dtype = output.dtype(),
      .rows = input.rows(),
      .dim = input.dim(),
      .layout = layout,
      .eps = options.eps,
      .scale = options.scale,
      .scaled = options.scale != 1.0f,
      .eps_mode = options.eps_mode,
      .vector_bytes = vector_bytes(input, output, layout),
      .rstd = rstd != nullptr ? static_cast<float*>(rstd->data()) : nullptr,
      .rstd_stride = rstd != nullptr ? rstd->stride(0) : 0,
  };
}

}  // namespace detail

void prewarm_l2_norm(const Device& device, DType input_dtype, DType output_dtype, std::int64_t dim,
                     const L2NormOptions& options) {
  if (dim <= 0) invalid("prewarm: dim must be positive, got " + std::to_string(dim));
  check_dtypes(input_dtype, output_dtype);
  detail::check_options(kOp, options);
  require_device(device);
  detail::prewarm_on(device, detail::L2NormPrewarm{input_dtype, output_dtype, dim, options});
}

void prewarm_l2_norm(const Device& device, DType dtype, std::int64_t dim,
                     const L2NormOptions& options) {
  prewarm_l2_norm(device, dtype, dtype, dim, options);
}

}  // namespace l2norm

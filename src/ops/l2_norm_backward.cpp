// The l2_norm_backward op: validates a call once, describes it as an L2NormBackwardCall and hands
// it to the encoder's backend (src/cpu/l2_norm_backward_cpu.cpp,
// src/cuda/l2_norm_backward_cuda.cpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "l2norm/error.hpp"
#include "l2norm/ops.hpp"
#include "ops/dispatch.hpp"
#include "ops/l2_norm_backward_call.hpp"
#include "ops/views.hpp"

namespace l2norm {
namespace {

constexpr std::string_view kOp = "l2_norm_backward";

[[noreturn]] void invalid(const std::string& message) {
  detail::invalid_argument(kOp, message);
}

void check_dtypes(DType dy, std::string_view y_name, DType y, DType dx) {
  detail::check_dtype(kOp, "dy", dy);
  detail::check_dtype(kOp, y_name, y);
  detail::check_dtype(kOp, "dx", dx);
}

// dx is written, so it must share no memory with what is read, with one exception: dx may be
// exactly dy (in place; each element of dy is read before dx's element is written, and the row's
// dot product is complete before any is written). The same pointer, shape and strides with
// another dtype would write rows over rows not yet read, hence one dtype.
void check_dx_apart(const TensorView& dy, std::string_view y_name, const TensorView& y,
                    const TensorView& dx) {
  const auto same_memory = [](const TensorView& a, const TensorView& b) {
    return a.data() == b.data() && std::ranges::equal(a.strides(), b.strides());
  };
  if (same_memory(dx, dy) && dx.dtype() != dy.dtype()) {
    invalid("dx is dy in place but their dtypes differ (dy " + std::string(dtype_name(dy.dtype())) +
            ", dx " + std::string(dtype_name(dx.dtype())) + "); in place needs one dtype");
  }
  detail::check_no_overlap(kOp, "dy", dy, "dx", dx);
  if (same_memory(dx, y)) {
    invalid("dx is " + std::string(y_name) + " (only dy may be overwritten in place)");
  }
  detail::check_no_overlap(kOp, y_name, y, "dx", dx);
}

// rstd: f32, rank 1, one value per row, on the tensors' device (checked with them), a
// non-negative stride (0 only for a single row), an element-aligned pointer.
void check_rstd_shape(const TensorView& rstd, std::int64_t rows) {
  if (rstd.dtype() != DType::f32) {
    invalid("rstd dtype is " + std::string(dtype_name(rstd.dtype())) + ", must be f32");
  }
  if (rstd.rank() != 1 || rstd.size(0) != rows) {
    invalid("rstd shape " + detail::format_dims(rstd.shape()) + " must be [rows] = [" +
            std::to_string(rows) + "]");
  }
}

void check_rstd_walkable(const TensorView& rstd, std::int64_t rows) {
  if (rstd.data() == nullptr) {
    invalid("rstd data pointer is null (" + std::to_string(rows) + " rows)");
  }
  if (rstd.stride(0) < 0 || (rstd.stride(0) == 0 && rows > 1)) {
    invalid("rstd stride " + std::to_string(rstd.stride(0)) + " must be positive (0 only for " +
            "one row; rows=" + std::to_string(rows) + ")");
  }
  if (reinterpret_cast<std::uintptr_t>(rstd.data()) % sizeof(float) != 0) {
    invalid("rstd pointer is not aligned to its 4-byte elements");
  }
}

// The checks every form shares, in the order of l2_norm's: devices, dtypes, shapes, dim, options;
// then nothing more for an empty batch; then the memory checks. Returns false for an empty batch.
bool check_views(std::string_view y_name, const TensorView& dy, const TensorView& y,
                 const TensorView& dx, const L2NormOptions& options) {
  check_dtypes(dy.dtype(), y_name, y.dtype(), dx.dtype());
  detail::check_same_shape(kOp, "dy", dy, y_name, y);
  detail::check_same_shape(kOp, "dy", dy, "dx", dx);
  if (dy.dim() == 0) invalid("dim is 0 (shape " + detail::format_dims(dy.shape()) + ")");
  detail::check_options(kOp, options);
  if (dy.rows() == 0) return false;
  detail::check_walkable(kOp, "dy", dy);
  detail::check_walkable(kOp, y_name, y);
  detail::check_walkable(kOp, "dx", dx);
  detail::check_extent(kOp, "dy", dy);
  detail::check_extent(kOp, y_name, y);
  detail::check_extent(kOp, "dx", dx);
  detail::check_rows_disjoint(kOp, "dx", dx);
  check_dx_apart(dy, y_name, y, dx);
  return true;
}

void dispatch(CommandEncoder& encoder, const TensorView& dy, const TensorView& y,
              const TensorView* rstd, const TensorView& dx, const L2NormOptions& options) {
  const std::array<const TensorView*, 3> views{&dy, &y, &dx};
  const detail::RowsLayout<3> layout = detail::rows_layout<3>(views);
  const detail::L2NormBackwardCall call{
      .dy = dy.data(),
      .y = y.data(),
      .rstd = rstd != nullptr ? static_cast<const float*>(rstd->data()) : nullptr,
      .rstd_stride = rstd != nullptr ? rstd->stride(0) : 0,
      .dx = dx.data(),
      .dtype = dx.dtype(),
      .dy_dtype = dy.dtype(),
      .y_dtype = y.dtype(),
      .rows = dy.rows(),
      .dim = dy.dim(),
      .layout = layout,
      .eps = options.eps,
      .scale = options.scale,
      .scaled = options.scale != 1.0f,
      .eps_mode = options.eps_mode,
      .from_input = rstd == nullptr,
      .vector_elements = detail::vector_elements<3>(views, layout),
  };
  detail::dispatch(encoder, "l2_norm_backward", call);
}

}  // namespace

void l2_norm_backward(CommandEncoder& encoder, const TensorView& dy, const TensorView& y,
                      const TensorView& rstd, const TensorView& dx, const L2NormOptions& options) {
  const std::array<detail::NamedDevice, 4> tensors{
      {{"dy", dy.device()}, {"y", y.device()}, {"rstd", rstd.device()}, {"dx", dx.device()}}};
  detail::check_devices(kOp, tensors, encoder.device());
  check_rstd_shape(rstd, dy.rows());
  if (!check_views("y", dy, y, dx, options)) return;
  check_rstd_walkable(rstd, dy.rows());
  detail::check_extent(kOp, "rstd", rstd);
  detail::check_no_overlap(kOp, "rstd", rstd, "dx", dx);
  dispatch(encoder, dy, y, &rstd, dx, options);
}

void l2_norm_backward_from_input(CommandEncoder& encoder, const TensorView& dy, const TensorView& x,
                                 const TensorView& dx, const L2NormOptions& options) {
  const std::array<detail::NamedDevice, 3> tensors{
      {{"dy", dy.device()}, {"x", x.device()}, {"dx", dx.device()}}};
  detail::check_devices(kOp, tensors, encoder.device());
  if (!check_views("x", dy, x, dx, options)) return;
  dispatch(encoder, dy, x, nullptr, dx, options);
}

void prewarm_l2_norm_backward(const Device& device, DType dy_dtype, DType y_dtype, DType dx_dtype,
                              std::int64_t dim, const L2NormOptions& options, bool from_input) {
  if (dim <= 0) invalid("prewarm: dim must be positive, got " + std::to_string(dim));
  check_dtypes(dy_dtype, from_input ? "x" : "y", y_dtype, dx_dtype);
  detail::check_options(kOp, options);
  require_device(device);
  detail::prewarm_on(
      device, detail::L2NormBackwardPrewarm{dy_dtype, y_dtype, dx_dtype, dim, options, from_input});
}

}  // namespace l2norm

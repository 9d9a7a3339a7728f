#include "support/backward.hpp"

#include <array>

namespace l2norm::testing {

HostTensor run_backward(const Device& device, const BackwardRun& run, std::string* variant) {
  const std::int64_t count = run.rows * run.dim;
  Buffer dy(device, run.dy.dtype(), count);
  Buffer y(device, run.y.dtype(), count);
  Buffer rstd(device, DType::f32, run.rstd != nullptr ? run.rows : 0);
  Buffer dx(device, run.dx_dtype, run.in_place ? 0 : count);
  dy.copy_from_host(run.dy.data(), run.dy.bytes());
  y.copy_from_host(run.y.data(), run.y.bytes());
  HostTensor result(run.dx_dtype, std::size_t(count));
  result.fill_poison();
  if (!run.in_place) dx.copy_from_host(result.data(), result.bytes());
  if (run.rstd != nullptr) rstd.copy_from_host(run.rstd->data(), run.rstd->size() * sizeof(float));
  const Buffer& target = run.in_place ? dy : dx;
  const std::array<std::int64_t, 2> shape{run.rows, run.dim};
  const TensorView dy_view(dy.data(), dy.dtype(), device, shape);
  const TensorView y_view(y.data(), y.dtype(), device, shape);
  const TensorView dx_view(target.data(), run.dx_dtype, device, shape);
  CommandEncoder encoder(device);
  if (run.rstd != nullptr) {
    const std::array<std::int64_t, 1> rstd_shape{run.rows};
    l2_norm_backward(encoder, dy_view, y_view,
                     TensorView(rstd.data(), DType::f32, device, rstd_shape), dx_view, run.options);
  } else {
    l2_norm_backward_from_input(encoder, dy_view, y_view, dx_view, run.options);
  }
  if (variant != nullptr && !encoder.recorded().empty()) *variant = encoder.recorded()[0].variant;
  encoder.wait();
  target.copy_to_host(result.data(), result.bytes());
  return result;
}

}  // namespace l2norm::testing

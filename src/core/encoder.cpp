#include "l2norm/encoder.hpp"

#include "core/backend.hpp"
#include "l2norm/error.hpp"

namespace l2norm {

CommandEncoder::CommandEncoder(Device device) : device_(device) {
  require_device(device);
  impl_ = device.is_cpu() ? detail::cpu::make_encoder()
                          : detail::cuda::make_encoder(device.index(), nullptr);
}

CommandEncoder::CommandEncoder(Device device, void* cuda_stream) : device_(device) {
  if (!device.is_cuda()) {
    throw Error(ErrorCode::invalid_argument,
                "CommandEncoder: a CUDA stream was given for device " + device.name());
  }
  require_device(device);
  impl_ = detail::cuda::make_encoder(device.index(), cuda_stream);
}

CommandEncoder::~CommandEncoder() = default;
CommandEncoder::CommandEncoder(CommandEncoder&&) noexcept = default;
CommandEncoder& CommandEncoder::operator=(CommandEncoder&&) noexcept = default;

void* CommandEncoder::cuda_stream() const noexcept {
  return impl_->cuda_stream();
}

std::size_t CommandEncoder::commit() {
  const std::size_t count = recorded_.size();
  recorded_.clear();
  return count;
}

void CommandEncoder::wait() {
  commit();
  impl_->wait();
}

}  // namespace l2norm

#include "l2norm/encoder.hpp"

#include <vector>

#include "core/backend.hpp"
#include "core/encoder_access.hpp"
#include "l2norm/error.hpp"

namespace l2norm {

struct CommandEncoder::State {
  std::unique_ptr<detail::EncoderImpl> impl;
  std::vector<DispatchRecord> recorded;
};

namespace detail {

CommandEncoder::State& EncoderAccess::live(const std::unique_ptr<CommandEncoder::State>& state,
                                           const char* call) {
  if (!state) {
    throw Error(ErrorCode::invalid_argument,
                std::string("CommandEncoder::") + call + ": the encoder was moved from");
  }
  return *state;
}

}  // namespace detail

using detail::EncoderAccess;

CommandEncoder::CommandEncoder(Device device) : state_(std::make_unique<State>()) {
  require_device(device);
  state_->impl = device.is_cpu() ? detail::cpu::make_encoder()
                                 : detail::cuda::make_encoder(device.index(), nullptr);
}

CommandEncoder::CommandEncoder(Device device, void* cuda_stream)
    : state_(std::make_unique<State>()) {
  if (!device.is_cuda()) {
    throw Error(ErrorCode::invalid_argument,
                "CommandEncoder: a CUDA stream was given for device " + device.name());
  }
  require_device(device);
  state_->impl = detail::cuda::make_encoder(device.index(), cuda_stream);
}

CommandEncoder::~CommandEncoder() = default;
CommandEncoder::CommandEncoder(CommandEncoder&&) noexcept = default;
CommandEncoder& CommandEncoder::operator=(CommandEncoder&&) noexcept = default;

Device CommandEncoder::device() const {
  return EncoderAccess::live(state_, "device").impl->device();
}

void* CommandEncoder::cuda_stream() const {
  return EncoderAccess::live(state_, "cuda_stream").impl->cuda_stream();
}

void CommandEncoder::set_launch_overlap(bool enabled) {
  EncoderAccess::live(state_, "set_launch_overlap").impl->set_launch_overlap(enabled);
}

bool CommandEncoder::launch_overlap() const {
  return EncoderAccess::live(state_, "launch_overlap").impl->launch_overlap();
}

std::size_t CommandEncoder::commit() {
  State& state = EncoderAccess::live(state_, "commit");
  const std::size_t count = state.recorded.size();
  state.recorded.clear();
  return count;
}

void CommandEncoder::wait() {
  EncoderAccess::live(state_, "wait");
  commit();
  state_->impl->wait();
}

std::span<const DispatchRecord> CommandEncoder::recorded() const {
  return EncoderAccess::live(state_, "recorded").recorded;
}

namespace detail {

EncoderImpl& EncoderAccess::impl(CommandEncoder& encoder) {
  return *live(encoder.state_, "dispatch").impl;
}

void EncoderAccess::record(CommandEncoder& encoder, DispatchRecord record) {
  live(encoder.state_, "dispatch").recorded.push_back(std::move(record));
}

}  // namespace detail

}  // namespace l2norm

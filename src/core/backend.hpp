// What the public types need from the backends: a work queue per encoder, memory, device
// discovery. Nothing here knows any op: ops reach their backend implementations through
// src/ops/dispatch.hpp.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "l2norm/device.hpp"

namespace l2norm::detail {

// One device's work queue, behind CommandEncoder. The CPU and CUDA backends derive from it
// (cpu::Encoder, cuda::Encoder); an op's dispatch reaches the derived type by device kind.
class EncoderImpl {
 public:
  explicit EncoderImpl(Device device) : device_(device) {}
  virtual ~EncoderImpl() = default;
  EncoderImpl(const EncoderImpl&) = delete;
  EncoderImpl& operator=(const EncoderImpl&) = delete;

  Device device() const noexcept { return device_; }
  // Blocks until every dispatch so far has finished. (Ending a batch needs nothing from a backend:
  // each dispatch is run or enqueued as it is recorded.)
  virtual void wait() = 0;
  virtual void* cuda_stream() const noexcept { return nullptr; }
  // Whether kernels may be launched to overlap the previous kernel's tail (CUDA, sm_90+).
  void set_launch_overlap(bool enabled) noexcept { launch_overlap_ = enabled; }
  bool launch_overlap() const noexcept { return launch_overlap_; }

 private:
  Device device_;
  bool launch_overlap_ = true;
};

// Tags that pick a backend's implementation of an op by argument-dependent lookup
// (src/ops/dispatch.hpp).
namespace cpu {
struct Backend {};
}  // namespace cpu
namespace cuda {
struct Backend {};
}  // namespace cuda

namespace cpu {
std::unique_ptr<EncoderImpl> make_encoder();
void* allocate(std::size_t bytes);  // 64-byte aligned; throws Error(out_of_memory)
void release(void* pointer) noexcept;
}  // namespace cpu

// Implemented in src/cuda/ when the CUDA backend is built, else by src/cuda/unavailable.cpp.
namespace cuda {
bool available() noexcept;
std::string unavailable_reason();
int device_count() noexcept;
std::vector<DeviceInfo> devices();
std::unique_ptr<EncoderImpl> make_encoder(int device_index, void* stream);
void* allocate(int device_index, std::size_t bytes);
void release(int device_index, void* pointer) noexcept;
void copy_to_device(int device_index, void* destination, const void* source, std::size_t bytes);
void copy_to_host(int device_index, void* destination, const void* source, std::size_t bytes);
}  // namespace cuda

}  // namespace l2norm::detail

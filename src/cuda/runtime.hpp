// Shared helpers of the CUDA backend: error translation, the current-device scope and cached
// device properties.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "cuda/device_caps.hpp"

namespace l2norm::detail::cuda {

// Throws Error(out_of_memory) for allocation failures, else Error(backend), naming `what` and the
// CUDA error.
[[noreturn]] void throw_cuda_error(cudaError_t status, const std::string& what);

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw_cuda_error(status, what);
}

// Makes `device_index` current for the calling thread and restores the previous device after.
class DeviceScope {
 public:
  explicit DeviceScope(int device_index);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

// Read once per device and cached. Throws Error(unsupported) for an index that does not exist.
const DeviceCaps& device_caps(int device_index);

}  // namespace l2norm::detail::cuda

// Device discovery, memory and copies for the CUDA backend (the detail::cuda half of
// src/core/backend.hpp that is not about kernels).
#include "cuda/runtime.hpp"

#include <array>
#include <cstdio>
#include <memory>
#include <mutex>

#include "core/backend.hpp"
#include "l2norm/error.hpp"

namespace l2norm::detail::cuda {

namespace {

struct Availability {
  int device_count = 0;
  std::string reason;  // empty when usable
};

// The runtime is linked statically; it loads the driver library on its first call, and reports a
// missing or too old driver as an error code, which is what lets the library load anywhere.
const Availability& availability() {
  static const Availability probed = [] {
    Availability result;
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      result.reason = std::string("no usable CUDA driver (") + cudaGetErrorName(status) + ": " +
                      cudaGetErrorString(status) + ")";
    } else if (count == 0) {
      result.reason = "no CUDA device found";
    } else {
      result.device_count = count;
    }
    return result;
  }();
  return probed;
}

std::string format_gib(std::size_t bytes) {
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "%.1f GiB",
                static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text.data();
}

}  // namespace

void throw_cuda_error(cudaError_t status, const std::string& what) {
  cudaGetLastError();
  const ErrorCode code =
      status == cudaErrorMemoryAllocation ? ErrorCode::out_of_memory : ErrorCode::backend;
  throw Error(code,
              what + " failed: " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

DeviceScope::DeviceScope(int device_index) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device_index) {
    check(cudaSetDevice(device_index), "cudaSetDevice");
  } else {
    previous_ = -1;
  }
}

DeviceScope::~DeviceScope() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

const DeviceCaps& device_caps(int device_index) {
  static std::mutex mutex;
  static std::array<std::unique_ptr<DeviceCaps>, 64> cache;
  if (device_index < 0 || device_index >= availability().device_count ||
      device_index >= static_cast<int>(cache.size())) {
    throw Error(ErrorCode::unsupported,
                "cuda:" + std::to_string(device_index) + " does not exist: " +
                    std::to_string(availability().device_count) + " CUDA device(s) present");
  }
  std::lock_guard lock(mutex);
  auto& slot = cache[static_cast<std::size_t>(device_index)];
  if (!slot) {
    cudaDeviceProp raw{};
    check(cudaGetDeviceProperties(&raw, device_index), "cudaGetDeviceProperties");
    auto properties = std::make_unique<DeviceCaps>();
    properties->name = raw.name;
    properties->arch = raw.major * 10 + raw.minor;
    properties->multiprocessors = raw.multiProcessorCount;
    properties->max_blocks_per_multiprocessor = raw.maxBlocksPerMultiProcessor;
    properties->max_threads_per_multiprocessor = raw.maxThreadsPerMultiProcessor;
    properties->shared_memory_per_block_optin = raw.sharedMemPerBlockOptin;
    properties->global_memory = raw.totalGlobalMem;
    properties->l2_cache_bytes = static_cast<std::size_t>(raw.l2CacheSize);
    slot = std::move(properties);
  }
  return *slot;
}

bool available() noexcept {
  try {
    return availability().reason.empty();
  } catch (...) {
    return false;
  }
}

std::string unavailable_reason() {
  return availability().reason;
}

int device_count() noexcept {
  try {
    return availability().device_count;
  } catch (...) {
    return 0;
  }
}

std::vector<DeviceInfo> devices() {
  std::vector<DeviceInfo> list;
  for (int index = 0; index < device_count(); ++index) {
    const DeviceCaps& properties = device_caps(index);
    list.push_back({Device::cuda(index), properties.name + ", sm_" +
                                             std::to_string(properties.arch) + ", " +
                                             std::to_string(properties.multiprocessors) + " SMs, " +
                                             format_gib(properties.global_memory)});
  }
  return list;
}

void* allocate(int device_index, std::size_t bytes) {
  device_caps(device_index);
  DeviceScope scope(device_index);
  void* pointer = nullptr;
  const cudaError_t status = cudaMalloc(&pointer, bytes == 0 ? 1 : bytes);
  if (status != cudaSuccess) {
    throw_cuda_error(status, "cuda:" + std::to_string(device_index) + ": cudaMalloc of " +
                                 std::to_string(bytes) + " bytes");
  }
  return pointer;
}

void release(int device_index, void* pointer) noexcept {
  if (pointer == nullptr) return;
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  if (previous != device_index) cudaSetDevice(device_index);
  cudaFree(pointer);
  if (previous != device_index) cudaSetDevice(previous);
}

void copy_to_device(int device_index, void* destination, const void* source, std::size_t bytes) {
  DeviceScope scope(device_index);
  check(cudaMemcpy(destination, source, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  // From pageable memory cudaMemcpy may return once the data is staged, before the DMA into the
  // buffer has finished, and only streams that synchronize with the legacy stream wait for it;
  // encoders run on non-blocking streams, so the copy is complete only after this.
  check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize after cudaMemcpy");
}

void copy_to_host(int device_index, void* destination, const void* source, std::size_t bytes) {
  DeviceScope scope(device_index);
  check(cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}

}  // namespace l2norm::detail::cuda

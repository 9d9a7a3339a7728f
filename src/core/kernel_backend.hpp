// What KernelRegistry needs from a compiler backend: the generic registry (src/core/registry.cpp)
// owns sources, cache keys, the disk and memory caches and the one-compile-per-key rule; the
// backend compiles a source to machine code and loads it on a device. The CUDA backend implements
// this with NVRTC and the CUDA runtime (src/cuda/); a build without CUDA implements it by raising
// Error(unsupported) (src/cuda/unavailable.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "l2norm/device.hpp"

namespace l2norm::detail::kernel_backend {

struct NamedSource {
  std::string name;
  std::string text;
};

// Names the compiler and its version; part of every cache key.
std::string compiler_identity();
// The compute capability of `device` as major * 10 + minor (e.g. 90).
int device_arch(const Device& device);
// The options every compile for `arch` gets, before the spec's defines.
std::vector<std::string> base_options(int arch);
// Compiles `source` (which may #include any of `headers` by name) to machine code. Throws
// Error(compile) carrying the compiler log and the options. With `spills` set, also reports
// there whether the machine code spills registers to local memory (false where the compiler
// says nothing of it).
std::vector<char> compile(const NamedSource& source, const std::vector<NamedSource>& headers,
                          const std::vector<std::string>& options, bool* spills = nullptr);
// Loads machine code on `device` and returns the kernel handle of `entry`, with its dynamic shared
// memory limit raised to `max_dynamic_shared_bytes` when that is not 0. The module stays loaded
// for the life of the process: captured graphs may still refer to it.
void* load(const Device& device, const std::vector<char>& binary, const std::string& entry,
           std::size_t max_dynamic_shared_bytes);

}  // namespace l2norm::detail::kernel_backend

// What a planner may know of a CUDA device: plain values read once from the device (runtime.cpp),
// or written out by hand for tests that plan without a GPU. No CUDA headers.
#pragma once

#include <cstddef>
#include <string>

namespace l2norm::detail::cuda {

struct DeviceCaps {
  std::string name;
  int arch = 0;  // major * 10 + minor
  int multiprocessors = 0;
  int max_blocks_per_multiprocessor = 0;
  int max_threads_per_multiprocessor = 0;
  std::size_t shared_memory_per_block_optin = 0;  // the most one block may opt in to
  std::size_t global_memory = 0;
  std::size_t l2_cache_bytes = 0;
};

}  // namespace l2norm::detail::cuda

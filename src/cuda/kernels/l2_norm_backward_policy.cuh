// The tuning policy of the l2_norm_backward kernels, read by the host planner
// (src/cuda/l2_norm_backward_plan.cpp) and by the NVRTC-compiled kernels alike. Plain C++ with no
// headers, so both compilers see the same values.
//
// The values that fix a row's sum order (the values a thread holds, the group or block that sums
// them, the tile shape) must be the same in every family; the planner asserts it. A family may
// differ only in what changes launches, never results.
#pragma once

struct L2NormBackwardPolicy {
  // Rows kernel (l2_norm_backward_rows.cuh): values of each tensor a thread holds in registers,
  // the widest row group (so the longest row is their product), the smallest block, and the block
  // of the latency layout that batches too small to fill the device get.
  int rows_values_per_thread;
  int max_threads_per_row;
  int rows_min_block_threads;
  int latency_block_threads;
  // The latency layout while its threads fill at most this share (1 / n) of the device's thread
  // slots; above it the throughput layout hides memory latency better.
  int latency_thread_share;
  // Eighths of a multiprocessor's thread slots that the rows kernel's registers must leave room
  // for: its launch bounds ask for that many threads' blocks per multiprocessor (0: no bound),
  // so the compiler keeps the warps resident that cover memory latency. Registers, not
  // arithmetic: no result changes.
  int rows_min_resident_eighths;
  // Split kernel (l2_norm_backward_split.cuh): values of each of dy and y (or x) per thread per
  // tile, threads per block, and tiles one block holds on chip (1 in registers, the rest in shared
  // memory).
  int tile_values_per_thread;
  int tile_block_threads;
  int max_tiles_per_block;
  // Blocks of the split kernel per multiprocessor: its launch bounds guarantee one, and the
  // planner sizes shared memory for one, so a cooperative grid of this many per multiprocessor is
  // co-resident.
  int split_blocks_per_multiprocessor;
  // An upper bound of the static shared memory the split kernel declares (it static_asserts it),
  // so the host sizes dynamic shared memory without compiling first.
  int split_static_shared_bytes;
  // Grid limit of the row-looping kernels (they loop over rows past it).
  long long max_grid_blocks;
  // Launch the rows kernel with programmatic stream serialization (sm_90 and newer).
  bool programmatic_launch;
};

// sm_75 .. sm_89.
constexpr L2NormBackwardPolicy kL2NormBackwardPolicySm75 = {
    16,         // rows_values_per_thread
    1024,       // max_threads_per_row
    256,        // rows_min_block_threads
    128,        // latency_block_threads
    2,          // latency_thread_share
    5,          // rows_min_resident_eighths
    16,         // tile_values_per_thread
    512,        // tile_block_threads
    8,          // max_tiles_per_block
    1,          // split_blocks_per_multiprocessor
    2048,       // split_static_shared_bytes
    1LL << 30,  // max_grid_blocks
    false,      // programmatic_launch
};

constexpr L2NormBackwardPolicy with_programmatic_launch(L2NormBackwardPolicy policy) {
  policy.programmatic_launch = true;
  return policy;
}

// sm_90 and newer: as sm_75, plus programmatic dependent launch of the rows kernel.
constexpr L2NormBackwardPolicy kL2NormBackwardPolicySm90 =
    with_programmatic_launch(kL2NormBackwardPolicySm75);

// The policy of compute capability `arch` (major * 10 + minor).
constexpr L2NormBackwardPolicy l2_norm_backward_policy(int arch) {
  return arch >= 90 ? kL2NormBackwardPolicySm90 : kL2NormBackwardPolicySm75;
}

#if defined(__CUDA_ARCH__)
// The policy of the architecture a kernel is being compiled for.
constexpr L2NormBackwardPolicy kBackwardKernelPolicy = l2_norm_backward_policy(__CUDA_ARCH__ / 10);
#endif

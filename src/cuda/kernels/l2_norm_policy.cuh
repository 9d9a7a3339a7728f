// The tuning policy of the l2_norm kernels, apart from their algorithm: one named set of constants
// per architecture family, read by the host planner (src/cuda/l2_norm_plan.cpp) and by the
// NVRTC-compiled kernels alike, so that no tuning value is written in two places. Plain C++ with
// no headers, so both compilers see the same values.
//
// Changing a value here changes launch shapes, never results, with one exception the planner
// guards: a row's sum order is fixed by dim and the tile layout (rows_values_per_thread,
// tile_values_per_thread, tile_block_threads), so those three are the same in every family.
#pragma once

// Dtype codes of the L2NORM_DTYPE define (element.cuh).
#define L2NORM_DTYPE_F32 0
#define L2NORM_DTYPE_F16 1
#define L2NORM_DTYPE_BF16 2

struct L2NormPolicy {
  // Rows kernel (l2_norm_rows.cuh): values each thread holds in registers, the widest row group,
  // the smallest block (rows of fewer threads share a block), and the block of the latency layout
  // that decode-sized batches get.
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
  // Staged and split kernels (tiles.cuh): values per thread per tile, threads per block, tiles one
  // block holds (split: 1 in registers, the rest in shared memory), and the most tiles an on-chip
  // split row may have for each warp to sum the row itself.
  int tile_values_per_thread;
  int tile_block_threads;
  int max_tiles_per_block;
  int warp_row_sum_tiles;
  // Blocks of a split kernel per multiprocessor: its launch bounds guarantee one, and the planner
  // sizes shared memory for one, so a cooperative grid of this many per multiprocessor is
  // co-resident.
  int split_blocks_per_multiprocessor;
  // Upper bounds of the static shared memory the staged and split kernels declare (each kernel
  // static_asserts its own), so the host sizes dynamic shared memory without compiling first.
  int staged_static_shared_bytes;
  int split_static_shared_bytes;
  // Output bytes an on-chip split block writes early, while its row's partial sums travel.
  int early_output_bytes;
  // Grid limit of the row-looping kernels (they loop over rows past it).
  long long max_grid_blocks;
  // Launch the rows kernel with programmatic stream serialization (sm_90 and newer).
  bool programmatic_launch;
};

// sm_75 .. sm_89.
constexpr L2NormPolicy kL2NormPolicySm75 = {
    16,         // rows_values_per_thread
    1024,       // max_threads_per_row
    256,        // rows_min_block_threads
    128,        // latency_block_threads
    2,          // latency_thread_share
    6,          // rows_min_resident_eighths
    32,         // tile_values_per_thread
    512,        // tile_block_threads
    8,          // max_tiles_per_block
    64,         // warp_row_sum_tiles
    1,          // split_blocks_per_multiprocessor
    2048,       // staged_static_shared_bytes
    2560,       // split_static_shared_bytes
    32768,      // early_output_bytes
    1LL << 30,  // max_grid_blocks
    false,      // programmatic_launch
};

constexpr L2NormPolicy with_programmatic_launch(L2NormPolicy policy) {
  policy.programmatic_launch = true;
  return policy;
}

// sm_90 and newer: as sm_75, plus programmatic dependent launch.
constexpr L2NormPolicy kL2NormPolicySm90 = with_programmatic_launch(kL2NormPolicySm75);

// The policy of compute capability `arch` (major * 10 + minor).
constexpr L2NormPolicy l2_norm_policy(int arch) {
  return arch >= 90 ? kL2NormPolicySm90 : kL2NormPolicySm75;
}

#if defined(__CUDA_ARCH__)
// The policy of the architecture a kernel is being compiled for.
constexpr L2NormPolicy kKernelPolicy = l2_norm_policy(__CUDA_ARCH__ / 10);
#endif

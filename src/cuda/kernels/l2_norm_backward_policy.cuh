// The tuning policy of the l2_norm_backward kernels, read by the host planner
// (src/cuda/l2_norm_backward_plan.cpp) and by the NVRTC-compiled kernels alike. Plain C++ with no
// headers, so both compilers see the same values.
//
// Every value here fixes a row's sum order (the values a thread holds, the group or block that
// sums them), so the families must agree on all of them; the planner asserts it. A family may
// differ only in what changes launches, never results.
#pragma once

struct L2NormBackwardPolicy {
  // Rows kernel (l2_norm_backward_rows.cuh): values of each tensor a thread holds in registers,
  // the widest row group (so the longest row is their product), and the smallest block.
  int rows_values_per_thread;
  int max_threads_per_row;
  int rows_min_block_threads;
  // Looped kernel (l2_norm_backward_looped.cuh): threads per block (one row per block) and values
  // per thread per step of the loop over the row.
  int looped_block_threads;
  int looped_values_per_thread;
  // Grid limit of the row-looping kernels (they loop over rows past it).
  long long max_grid_blocks;
};

// sm_75 and newer.
constexpr L2NormBackwardPolicy kL2NormBackwardPolicySm75 = {
    16,         // rows_values_per_thread
    1024,       // max_threads_per_row
    256,        // rows_min_block_threads
    512,        // looped_block_threads
    16,         // looped_values_per_thread
    1LL << 30,  // max_grid_blocks
};

// The policy of compute capability `arch` (major * 10 + minor).
constexpr L2NormBackwardPolicy l2_norm_backward_policy(int) {
  return kL2NormBackwardPolicySm75;
}

#if defined(__CUDA_ARCH__)
// The policy of the architecture a kernel is being compiled for.
constexpr L2NormBackwardPolicy kBackwardKernelPolicy = l2_norm_backward_policy(__CUDA_ARCH__ / 10);
#endif

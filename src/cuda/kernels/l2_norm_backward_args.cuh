// Kernel parameters of l2_norm_backward shared, byte for byte, by the host launcher (plain C++) and
// the NVRTC-compiled kernels. Only fixed-size builtin types, so both compilers agree on the layout.
#pragma once

#define L2NORM_BACKWARD_MAX_OUTER_RANK 3
// Views in strides[]: dy, y (or x), dx (as L2NormBackwardCall numbers them).
#define L2NORM_BACKWARD_VIEWS 3

struct L2NormBackwardArgs {
  const void* dy;
  const void* y;      // the forward's output, or its input x (L2NORM_FROM_INPUT)
  const float* rstd;  // rstd[row * rstd_stride]; unused from the input
  void* dx;
  long long rstd_stride;
  long long rows;
  long long dim;
  // Row r of view v starts at sum_i index_i * strides[v][i], (index_0, ...) = r unraveled over
  // outer_sizes; r / outer_sizes[i] by multiply-high with outer_multipliers[i] and
  // outer_shifts[i] (src/cuda/outer_divisor.hpp).
  int outer_rank;
  long long outer_sizes[L2NORM_BACKWARD_MAX_OUTER_RANK];
  unsigned long long outer_multipliers[L2NORM_BACKWARD_MAX_OUTER_RANK];
  int outer_shifts[L2NORM_BACKWARD_MAX_OUTER_RANK];
  long long strides[L2NORM_BACKWARD_VIEWS][L2NORM_BACKWARD_MAX_OUTER_RANK];
  float eps;
  float scale;
};

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

// Extra parameters of the split-row kernel (l2_norm_backward_split.cuh): each row is cut into
// blocks_per_row segments of tiles_per_block tiles; rows_per_wave rows are in flight at once (the
// grid is rows_per_wave * blocks_per_row blocks, at most 2^31 - 1), in `waves` waves. With more
// than one block per row the grid is co-resident (cooperative launch) and the blocks of a row
// exchange partial sums through the encoder's workspace, zeroed once: per sum (the sum of squares
// from the input in f32 and f64, the dot product) an array of tagged words in two wave parities
// (an f32 partial takes one word, an f64 partial two), and the tag counter
// (partial_exchange.cuh). Partial sums are per tile on chip and per block streamed.
struct L2NormBackwardSplitArgs {
  long long blocks_per_row;
  long long tiles_per_block;
  long long rows_per_wave;
  long long waves;
  unsigned long long* squares_f32;
  unsigned long long* squares_f64;
  unsigned long long* dot_f32;
  unsigned long long* tag_counter;
};

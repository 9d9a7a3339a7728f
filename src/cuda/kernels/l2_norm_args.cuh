// Kernel parameters shared, byte for byte, by the host launcher (plain C++) and the NVRTC-compiled
// kernels. Only fixed-size builtin types, so both compilers agree on the layout.
#pragma once

#include "l2_norm_policy.cuh"

#define L2NORM_MAX_OUTER_RANK 3

struct L2NormArgs {
  const void* input;
  void* output;
  long long rows;
  long long dim;
  // Row r starts at sum_i index_i * stride_i, (index_0, ...) = r unraveled over outer_sizes;
  // r / outer_sizes[i] by multiply-high with outer_multipliers[i] and outer_shifts[i]
  // (src/cuda/outer_divisor.hpp).
  int outer_rank;
  long long outer_sizes[L2NORM_MAX_OUTER_RANK];
  unsigned long long outer_multipliers[L2NORM_MAX_OUTER_RANK];
  int outer_shifts[L2NORM_MAX_OUTER_RANK];
  long long input_strides[L2NORM_MAX_OUTER_RANK];
  long long output_strides[L2NORM_MAX_OUTER_RANK];
  float eps;
  float scale;
  // When not null, each row's rstd (the f32 factor it was scaled by before scale, the rare path's
  // f64 one rounded) goes to rstd[row * rstd_stride], written by one thread in the same launch.
  float* rstd;
  long long rstd_stride;
};

// Extra parameters of the split-row kernel: each row is cut into blocks_per_row segments of
// tiles_per_block tiles; rows_per_wave rows are in flight at once (the co-resident grid is
// rows_per_wave * blocks_per_row blocks, at most 2^31 - 1), in `waves` waves. Partial sums are per
// tile on chip and per block streamed. The workspace belongs to the encoder, zeroed once: partial
// sums as tagged words (two parities; an f32 partial takes one word, an f64 partial two) and the
// tag counter (l2_norm_split.cuh). early_lines (0 or 1): on chip, each block writes part of its
// output early, while the row's partial sums travel (write_early_lines).
struct L2NormSplitArgs {
  long long blocks_per_row;
  long long tiles_per_block;
  long long rows_per_wave;
  long long waves;
  long long early_lines;
  unsigned long long* partial_f32;
  unsigned long long* partial_f64;
  unsigned long long* tag_counter;
};

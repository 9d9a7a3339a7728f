// A validated l2_norm call, as the op layer hands it to a backend: backends run it and never check
// it again.
#pragma once

#include <cstdint>

#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "ops/rows.hpp"

namespace l2norm::detail {

struct L2NormCall {
  const void* input;
  void* output;  // == input when in place
  DType dtype;
  std::int64_t rows;  // >= 1
  std::int64_t dim;   // >= 1
  RowLayout layout;
  float eps;    // finite, >= 0
  float scale;  // finite
  bool scaled;  // scale != 1: apply the second, separately rounded multiply
  EpsMode eps_mode;
  // Largest of 16, 8, 4, 2 bytes (never below the element size) that divides both base
  // addresses, every row stride in bytes and the row length in bytes. 16 selects the aligned
  // (16-byte vector) variants; anything less selects the unaligned ones.
  int vector_bytes;
  // Each row's reciprocal norm goes to rstd[row * rstd_stride] (f32) when rstd is not null.
  float* rstd = nullptr;
  std::int64_t rstd_stride = 0;
};

// What prewarm_l2_norm compiles for: every variant a call of this dtype, dim and options may pick.
struct L2NormPrewarm {
  DType dtype;
  std::int64_t dim;
  L2NormOptions options;
};

}  // namespace l2norm::detail

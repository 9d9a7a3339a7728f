// A validated l2_norm_backward call, as the op layer hands it to a backend, and the entry points
// each backend defines for it.
#pragma once

#include <cstdint>
#include <string>

#include "core/backend.hpp"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "ops/rows.hpp"

namespace l2norm::detail {

struct L2NormBackwardCall {
  // Views walked together, in this order in `layout.strides`.
  static constexpr int kDy = 0;
  static constexpr int kY = 1;  // y, or x when from_input
  static constexpr int kDx = 2;

  const void* dy;
  const void* y;      // the forward's output (scale 1), or its input x when from_input
  const float* rstd;  // one f32 per row at rstd[row * rstd_stride]; null when from_input
  std::int64_t rstd_stride;
  void* dx;     // == dy when in place
  DType dtype;  // dx's (what the dispatch record names)
  DType dy_dtype;
  DType y_dtype;
  std::int64_t rows;  // >= 1
  std::int64_t dim;   // >= 1
  RowsLayout<3> layout;
  float eps;    // finite, >= 0
  float scale;  // finite
  bool scaled;  // scale != 1
  EpsMode eps_mode;
  bool from_input;
  // The most elements one vector access of dy, y and dx may move (8, 4, 2 or 1; at most 16 bytes
  // of the widest dtype): divides every view's base address, row strides and row length.
  int vector_elements;
};

// What prewarm_l2_norm_backward compiles for: every variant a call with these dtypes, dim, options
// and form may pick.
struct L2NormBackwardPrewarm {
  DType dy_dtype;
  DType y_dtype;
  DType dx_dtype;
  std::int64_t dim;
  L2NormOptions options;
  bool from_input;
};

// Runs the call to completion on the calling thread and the pool
// (src/cpu/l2_norm_backward_cpu.cpp); returns the variant name, e.g.
// "cpu.l2_norm_backward<dy=bf16,y=bf16,dx=f32,add,unscaled,from_output>".
namespace cpu {
std::string run(Backend, EncoderImpl& encoder, const L2NormBackwardCall& call);
}  // namespace cpu

// Defined where the CUDA backend is built (src/cuda/l2_norm_backward_cuda.cpp): enqueues the call
// and returns the kernel's name; prewarm loads every variant a call of the request's dtypes, dim,
// options and form may pick on the device.
namespace cuda {
std::string run(Backend, EncoderImpl& encoder, const L2NormBackwardCall& call);
void prewarm(Backend, int device_index, const L2NormBackwardPrewarm& request);
}  // namespace cuda

}  // namespace l2norm::detail

// A validated l2_norm call, as the op layer hands it to a backend, and the entry points each
// backend defines for it: backends run the call and never check it again.
#pragma once

#include <cstdint>
#include <string>

#include "core/backend.hpp"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "l2norm/tensor.hpp"
#include "ops/rows.hpp"

namespace l2norm::detail {

struct L2NormCall {
  const void* input;
  void* output;  // == input when in place (then output_dtype == dtype)
  DType dtype;   // the input's (what the dispatch record names)
  DType output_dtype;
  std::int64_t rows;  // >= 1
  std::int64_t dim;   // >= 1
  RowLayout layout;
  float eps;    // finite, >= 0
  float scale;  // finite
  bool scaled;  // scale != 1: apply the second, separately rounded multiply
  EpsMode eps_mode;
  // Input bytes per vector access: 16, 8, 4 or 2, never below the input's element size. A vector
  // is that many bytes of the input and the same elements of the output (ops/views.hpp
  // vector_bytes says which alignment each view needs). 16 selects the aligned variants; anything
  // less selects the unaligned ones.
  int vector_bytes;
  // Each row's reciprocal norm goes to rstd[row * rstd_stride] (f32) when rstd is not null.
  float* rstd = nullptr;
  std::int64_t rstd_stride = 0;
};

// What prewarm_l2_norm compiles for: every variant a call of these dtypes, dim and options may
// pick.
struct L2NormPrewarm {
  DType dtype;  // the input's
  DType output_dtype;
  std::int64_t dim;
  L2NormOptions options;
};

// The checks of l2_norm's tensor form, devices apart (the caller checks them with every tensor of
// its call); errors start with "l2_norm: ". Returns false for a view with zero rows, which is
// valid and does nothing.
bool check_l2_norm_views(const TensorView& input, const TensorView& output,
                         const L2NormOptions& options, const TensorView* rstd);
// The call of views that passed check_l2_norm_views.
L2NormCall make_l2_norm_call(const TensorView& input, const TensorView& output,
                             const L2NormOptions& options, const TensorView* rstd);

// Runs the call to completion on the calling thread and the pool (src/cpu/l2_norm_cpu.cpp);
// returns the variant name, e.g. "cpu.l2_norm<bf16,add,scaled,streaming>", or with another output
// dtype "cpu.l2_norm<bf16->f32,add,scaled,streaming>".
namespace cpu {
std::string run(Backend, EncoderImpl& encoder, const L2NormCall& call);
}  // namespace cpu

// Defined where the CUDA backend is built (src/cuda/l2_norm_cuda.cpp): enqueues the call on the
// encoder's stream and returns the kernel's name; prewarm loads every kernel a call of the
// request's dtypes, dim and options may need on the device.
namespace cuda {
std::string run(Backend, EncoderImpl& encoder, const L2NormCall& call);
void prewarm(Backend, int device_index, const L2NormPrewarm& request);
}  // namespace cuda

}  // namespace l2norm::detail

// A validated l2_norm_pair call, as the op layer hands it to a backend, and the entry points each
// backend defines for it: backends run the call and never check it again.
#pragma once

#include <string>

#include "core/backend.hpp"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "ops/l2_norm_call.hpp"

namespace l2norm::detail {

// Two l2_norm calls (each with rows >= 1) that share no written memory, to run as one dispatch.
struct L2NormPairCall {
  L2NormCall first;
  L2NormCall second;
  // What the encoder records: the first target's dtype and dim, the rows of both.
  DType dtype;
  std::int64_t rows;
  std::int64_t dim;
};

// What prewarm_l2_norm_pair compiles for.
struct L2NormPairPrewarm {
  L2NormKernelShape first;
  L2NormKernelShape second;
};

// Normalizes both targets' rows in one pass over the pool (src/cpu/l2_norm_pair_cpu.cpp); returns
// the variant name.
namespace cpu {
std::string run(Backend, EncoderImpl& encoder, const L2NormPairCall& call);
}  // namespace cpu

// Defined where the CUDA backend is built (src/cuda/l2_norm_pair_cuda.cpp): enqueues the call on
// the encoder's stream and returns the kernel's name; prewarm loads every kernel a call of these
// shapes may need on the device.
namespace cuda {
std::string run(Backend, EncoderImpl& encoder, const L2NormPairCall& call);
void prewarm(Backend, int device_index, const L2NormPairPrewarm& request);
}  // namespace cuda

}  // namespace l2norm::detail

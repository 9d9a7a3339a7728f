// The CPU implementation of l2_norm_backward (src/cpu/l2_norm_backward_cpu.cpp).
#pragma once

#include <string>

#include "core/backend.hpp"
#include "ops/l2_norm_backward_call.hpp"

namespace l2norm::detail::cpu {

// Runs a validated call to completion on the calling thread and the pool; returns the variant name,
// e.g. "cpu.l2_norm_backward<dy=bf16,y=bf16,dx=f32,add,unscaled,from_output>".
std::string run_l2_norm_backward(const L2NormBackwardCall& call);

// The op's entry on this backend (src/ops/dispatch.hpp): runs to completion before returning.
inline std::string run(Backend, EncoderImpl&, const L2NormBackwardCall& call) {
  return run_l2_norm_backward(call);
}

}  // namespace l2norm::detail::cpu

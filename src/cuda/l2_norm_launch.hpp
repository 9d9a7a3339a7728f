// What other ops reuse of the l2_norm launcher (src/cuda/l2_norm_cuda.cpp).
#pragma once

#include <string>

#include "cuda/encoder.hpp"
#include "cuda/kernels/l2_norm_args.cuh"
#include "cuda/l2_norm_plan.hpp"
#include "ops/l2_norm_call.hpp"

namespace l2norm::detail::cuda {

// The kernel parameters of a validated call.
L2NormArgs make_l2_norm_args(const L2NormCall& call);
// Enqueues `call` as `plan` describes it (plan_l2_norm's plan of it on the encoder's device);
// returns the kernel's name.
std::string enqueue_l2_norm(Encoder& encoder, const L2NormCall& call, const L2NormPlan& plan);

}  // namespace l2norm::detail::cuda

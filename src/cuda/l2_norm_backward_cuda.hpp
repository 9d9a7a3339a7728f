// The CUDA implementation of l2_norm_backward: plans the call (l2_norm_backward_plan.hpp), finds
// the kernel in the registry and launches it on the encoder's stream. No CUDA headers, so the op
// layer can name it in any build; it is defined only where the CUDA backend is built.
#pragma once

#include <string>

#include "core/backend.hpp"
#include "ops/l2_norm_backward_call.hpp"

namespace l2norm::detail::cuda {

// Enqueues the call; returns the name of the kernel variant it launched.
std::string run(Backend, EncoderImpl& encoder, const L2NormBackwardCall& call);
// Loads every variant a call of the request's dtypes, dim, options and form may pick on the device.
void prewarm(Backend, int device_index, const L2NormBackwardPrewarm& request);

}  // namespace l2norm::detail::cuda

// The CPU implementation of l2_norm (src/cpu/l2_norm_cpu.cpp).
#pragma once

#include <string>

#include "core/backend.hpp"
#include "ops/l2_norm_call.hpp"

namespace l2norm::detail::cpu {

// Runs a validated call to completion on the calling thread and the pool; returns the variant name,
// e.g. "cpu.l2_norm<bf16,add,scaled,streaming>".
std::string run_l2_norm(const L2NormCall& call);

}  // namespace l2norm::detail::cpu

// The CPU implementation of l2_norm (src/cpu/l2_norm_cpu.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "core/backend.hpp"
#include "ops/l2_norm_call.hpp"

namespace l2norm::detail::cpu {

// Runs a validated call to completion on the calling thread and the pool; returns the variant name,
// e.g. "cpu.l2_norm<bf16,add,scaled,streaming>".
std::string run_l2_norm(const L2NormCall& call);

// The parts of run_l2_norm, for ops that run l2_norm rows inside their own pass over the pool:
// the bytes the call reads and writes; whether `call`, in a job of `job_bytes`, stores with
// non-temporal stores (an output of its own in a job above the last-level cache); rows
// [row_begin, row_end) normalized on the calling thread, bitwise as run_l2_norm writes them
// (streaming or not); and the variant name.
std::int64_t l2_norm_job_bytes(const L2NormCall& call);
bool l2_norm_streams(const L2NormCall& call, std::int64_t job_bytes);
void normalize_row_range(const L2NormCall& call, bool streaming, std::int64_t row_begin,
                         std::int64_t row_end);
std::string l2_norm_variant_name(const L2NormCall& call, bool streaming);

}  // namespace l2norm::detail::cpu

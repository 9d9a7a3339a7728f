// The CPU implementation of l2_norm (src/cpu/l2_norm_cpu.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/backend.hpp"
#include "ops/l2_norm_call.hpp"

namespace l2norm::detail::cpu {

// Runs a validated call to completion on the calling thread and the pool; returns the variant name,
// e.g. "cpu.l2_norm<bf16,add,scaled,streaming>".
std::string run_l2_norm(const L2NormCall& call);

// The op's entry on this backend (src/ops/dispatch.hpp): runs to completion before returning.
inline std::string run(Backend, EncoderImpl&, const L2NormCall& call) {
  return run_l2_norm(call);
}

// Jobs moving more bytes than this (input plus output; the last-level cache size) store their
// output with non-temporal stores: it would not stay cached anyway, and streaming skips the read
// for ownership.
std::int64_t streaming_threshold_bytes();

// The vectorized conversions the kernel uses, exposed so that tests can hold them to the scalar
// functions of l2norm/dtype.hpp. Source and destination are `count` elements of `dtype` / f32.
void widen_to_f32(DType dtype, const void* source, float* destination, std::size_t count);
void narrow_from_f32(DType dtype, const float* source, void* destination, std::size_t count);
// The kernel's common-path rounding, for sources known to hold no NaN (it skips that case).
void narrow_non_nan_from_f32(DType dtype, const float* source, void* destination,
                             std::size_t count);

}  // namespace l2norm::detail::cpu

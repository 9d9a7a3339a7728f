// How an op's validated call reaches its backend implementation. Each op's call header
// (src/ops/<op>_call.hpp) declares, and each backend defines (src/cpu/<op>_cpu.cpp,
// src/cuda/<op>_cuda.cpp),
//   std::string run(cpu::Backend, EncoderImpl&, const Call&)
//   std::string run(cuda::Backend, EncoderImpl&, const Call&)
// returning the name of the kernel it ran, and optionally
//   void prewarm(cuda::Backend, int device_index, const Request&)
// Calls find them by argument-dependent lookup on the backend tag, so this file names no op, the
// op layer includes no backend, and a build without the CUDA backend needs no CUDA half of any op
// (no CUDA encoder can exist there).
#pragma once

#include <string>
#include <utility>

#include "core/backend.hpp"
#include "core/encoder_access.hpp"
#include "l2norm/encoder.hpp"
#include "l2norm/error.hpp"

#ifndef L2NORM_WITH_CUDA
#error "the library's sources are compiled with L2NORM_WITH_CUDA set to 0 or 1"
#endif

namespace l2norm::detail {

// Runs (CPU) or enqueues (CUDA) `call` on the encoder's device and records the dispatch under
// `op`, with the kernel the backend picked.
template <typename Call>
void dispatch(CommandEncoder& encoder, const char* op, const Call& call) {
  EncoderImpl& impl = EncoderAccess::impl(encoder);
  std::string variant;
  if (impl.device().is_cpu()) {
    variant = run(cpu::Backend{}, impl, call);
  } else {
#if L2NORM_WITH_CUDA
    variant = run(cuda::Backend{}, impl, call);
#else
    throw Error(ErrorCode::unsupported,
                std::string(op) + ": this build has no CUDA backend for " + impl.device().name());
#endif
  }
  EncoderAccess::record(encoder, {op, std::move(variant), call.dtype, call.rows, call.dim});
}

// Compiles ahead of time what `request` may need on `device`; nothing to do on the CPU.
template <typename Request>
void prewarm_on(const Device& device, const Request& request) {
  if (!device.is_cuda()) return;
#if L2NORM_WITH_CUDA
  prewarm(cuda::Backend{}, device.index(), request);
#else
  (void)request;
#endif
}

}  // namespace l2norm::detail

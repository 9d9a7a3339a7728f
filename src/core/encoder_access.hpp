// The library's own access to a CommandEncoder's internals: the op layer hands validated work to
// the encoder's backend queue and records the dispatch. Not part of the public API.
#pragma once

#include "core/backend.hpp"
#include "l2norm/encoder.hpp"

namespace l2norm::detail {

struct EncoderAccess {
  // The encoder's queue; throws Error(invalid_argument) for a moved-from encoder.
  static EncoderImpl& impl(CommandEncoder& encoder);
  static void record(CommandEncoder& encoder, DispatchRecord record);
  // The state of a live encoder; throws Error(invalid_argument) naming `call` for a moved-from one.
  static CommandEncoder::State& live(const std::unique_ptr<CommandEncoder::State>& state,
                                     const char* call);
};

}  // namespace l2norm::detail

// What the CPU backend knows of the machine's caches.
#pragma once

#include <cstdint>

namespace l2norm::detail::cpu {

// Jobs moving more bytes than this (input plus output; the last-level cache size) store their
// output with non-temporal stores: it would not stay cached anyway, and streaming skips the read
// for ownership. Probed once per process.
std::int64_t streaming_threshold_bytes();

}  // namespace l2norm::detail::cpu

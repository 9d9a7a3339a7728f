// The CPU backend's encoder and memory. Work runs synchronously as it is recorded, so commit and
// wait have nothing left to do.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/backend.hpp"
#include "l2norm/error.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace l2norm::detail::cpu {
namespace {

// Ops run synchronously on the calling thread and the pool (each op's run(cpu::Backend, ...)), so
// there is never anything to wait for.
class CpuEncoder final : public EncoderImpl {
 public:
  CpuEncoder() : EncoderImpl(Device::cpu()) {}
  void wait() override {}
};

constexpr std::size_t kCacheLineBytes = 64;
// Large buffers are aligned to a huge page and offered to transparent huge pages: streaming
// through hundreds of MiB then walks far fewer page-table entries.
constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
constexpr std::size_t kHugePageMinimumBytes = 4 * kHugePageBytes;

}  // namespace

std::unique_ptr<EncoderImpl> make_encoder() {
  return std::make_unique<CpuEncoder>();
}

void* allocate(std::size_t bytes) {
  const bool huge = bytes >= kHugePageMinimumBytes;
  const std::size_t alignment = huge ? kHugePageBytes : kCacheLineBytes;
  // aligned_alloc wants a size that is a multiple of the alignment, and zero bytes still get a
  // unique, freeable pointer.
  void* pointer = nullptr;
  if (bytes <= SIZE_MAX - alignment) {
    const std::size_t rounded =
        bytes == 0 ? alignment : (bytes + alignment - 1) / alignment * alignment;
    pointer = std::aligned_alloc(alignment, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Advice only: where THP is off the call fails harmlessly and pages stay small.
    if (pointer != nullptr && huge) madvise(pointer, rounded, MADV_HUGEPAGE);
#endif
  }
  if (pointer == nullptr) {
    throw Error(ErrorCode::out_of_memory, "cpu allocate: cannot allocate " + std::to_string(bytes) +
                                              " bytes (" + std::to_string(alignment) +
                                              "-byte aligned)");
  }
  return pointer;
}

void release(void* pointer) noexcept {
  std::free(pointer);
}

}  // namespace l2norm::detail::cpu

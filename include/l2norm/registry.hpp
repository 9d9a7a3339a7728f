// The kernel registry: named kernel sources, compiled on first use for the exact architecture of a
// device and cached in memory (per device) and on disk. On CUDA builds compilation goes through
// NVRTC; a build without CUDA can register sources but compiling raises Error(unsupported).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "l2norm/device.hpp"

namespace l2norm {

// One specialization of one kernel: which source, which entry point, which compile-time defines,
// and the launch attribute set on the kernel once, when it is loaded.
struct KernelSpec {
  std::string source;                // a registered source name, e.g. "l2_norm_rows.cuh"
  std::string entry;                 // a __global__ function name expression, e.g. "l2_norm_rows"
  std::vector<std::string> defines;  // "NAME=VALUE" pairs that specialize the source
  // The most dynamic shared memory any launch of the kernel uses, when above the default 48 KiB
  // (cudaFuncAttributeMaxDynamicSharedMemorySize); 0 leaves the default.
  std::size_t max_dynamic_shared_bytes = 0;
  // "NAME=VALUE" that replaces the define of the same NAME when the build with `defines` spills
  // registers to local memory; empty: none. For launch bounds that ask registers for occupancy:
  // a build that spills to meet them runs slower than one that does not ask. Both are built (side
  // by side) and the choice, which depends on the compiler and the arch only, is cached with the
  // binary.
  std::string spill_fallback_define{};
};

struct RegistryStats {
  std::uint64_t compiles = 0;      // NVRTC compilations run (two for a spec with a spill fallback)
  std::uint64_t memory_hits = 0;   // served from the in-memory cache
  std::uint64_t disk_hits = 0;     // loaded from the disk cache
  std::uint64_t disk_rejects = 0;  // disk entries found corrupt or truncated, then recompiled
};

class KernelRegistry {
 public:
  // The process-wide registry; the library's own kernels are registered in it at first use.
  static KernelRegistry& global();

  // Adds a named source. Other sources may #include it by that name. Registering the same name
  // with the same text again is a no-op; with other text it is Error(invalid_argument).
  void register_source(std::string_view name, std::string_view source);
  bool has_source(std::string_view name) const;
  std::vector<std::string> source_names() const;

  // Returns the loaded kernel (a cudaKernel_t) for `device`, compiling it on first use. One compile
  // per key even when many threads ask at once. While compilation is disallowed on the calling
  // thread (see CompileGuard) a miss raises Error(unsupported) instead of compiling.
  void* kernel(const Device& device, const KernelSpec& spec);

  // The same kernel, found by a compact description of it: `identity` is a value of a type with
  // unique object representations (no padding) and a `KernelSpec spec() const` that it fully
  // determines. A loaded kernel is found from the identity's bytes alone, without building the
  // spec; the spec is built (and compiled or read from disk) only the first time.
  template <typename Identity>
  void* kernel(const Device& device, const Identity& identity) {
    return kernel_by_identity(device, identity_bytes(identity), type_tag<Identity>(),
                              [&identity] { return identity.spec(); });
  }
  // The kernel of `identity` if it is loaded on `device`, else nullptr; never compiles.
  template <typename Identity>
  void* loaded_kernel(const Device& device, const Identity& identity) const {
    return find_by_identity(device, identity_bytes(identity), type_tag<Identity>());
  }

  // Compiles `spec` to machine code for sm_<arch> without needing a device, as kernel() would (the
  // spill fallback included); throws Error(compile) with the NVRTC log and options on failure.
  // Used to check every variant in CI.
  std::vector<char> compile_for_arch(const KernelSpec& spec, int arch);

  // Disk cache folder: $L2NORM_CACHE_DIR, else $XDG_CACHE_HOME/l2norm, else ~/.cache/l2norm.
  std::string cache_dir() const;
  void set_cache_dir(std::string path);
  RegistryStats stats() const;
  // Forgets compiled kernels held in memory (the disk cache stays), so the next kernel() call
  // loads from disk or compiles. For tests and benchmarks. Kernels already handed out stay loaded
  // (modules are never unloaded: captured graphs may refer to them).
  void clear_memory_cache();

  KernelRegistry();
  ~KernelRegistry();
  KernelRegistry(const KernelRegistry&) = delete;
  KernelRegistry& operator=(const KernelRegistry&) = delete;

 private:
  template <typename Identity>
  static std::span<const std::byte> identity_bytes(const Identity& identity) {
    static_assert(std::has_unique_object_representations_v<Identity>,
                  "a kernel identity's bytes must determine its value (no padding)");
    return std::as_bytes(std::span(&identity, 1));
  }
  // One address per identity type, so that equal bytes of different types never collide.
  template <typename Identity>
  static const void* type_tag() {
    static const char tag = 0;
    return &tag;
  }
  void* kernel_by_identity(const Device& device, std::span<const std::byte> identity,
                           const void* type, const std::function<KernelSpec()>& make_spec);
  void* find_by_identity(const Device& device, std::span<const std::byte> identity,
                         const void* type) const;

  class Impl;
  std::unique_ptr<Impl> impl_;
};

// While alive, kernel() on this thread raises instead of compiling: used around CUDA-graph capture
// so that a missing prewarm becomes a clear error rather than a broken capture.
class CompileGuard {
 public:
  CompileGuard() noexcept;
  ~CompileGuard();
  CompileGuard(const CompileGuard&) = delete;
  CompileGuard& operator=(const CompileGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace l2norm

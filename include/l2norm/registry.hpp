// The kernel registry: named kernel sources, compiled on first use for the exact architecture of a
// device and cached in memory (per device) and on disk. On CUDA builds compilation goes through
// NVRTC; a build without CUDA can register sources but compiling raises Error(unsupported).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "l2norm/device.hpp"

namespace l2norm {

// One specialization of one kernel: which source, which entry point, which compile-time defines.
struct KernelSpec {
  std::string source;                // a registered source name, e.g. "l2_norm_rows.cuh"
  std::string entry;                 // a __global__ function name expression, e.g. "l2_norm_rows"
  std::vector<std::string> defines;  // "NAME=VALUE" pairs that specialize the source
};

struct RegistryStats {
  std::uint64_t compiles = 0;      // NVRTC compilations run
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
  // Compiles `spec` to machine code for sm_<arch> without needing a device; throws Error(compile)
  // with the NVRTC log and options on failure. Used to check every variant in CI.
  std::vector<char> compile_for_arch(const KernelSpec& spec, int arch);

  // Disk cache folder: $L2NORM_CACHE_DIR, else $XDG_CACHE_HOME/l2norm, else ~/.cache/l2norm.
  std::string cache_dir() const;
  void set_cache_dir(std::string path);
  RegistryStats stats() const;
  // Forgets compiled kernels held in memory (the disk cache stays), so the next kernel() call
  // loads from disk or compiles. For tests and benchmarks. Kernels already handed out stay loaded:
  // the l2_norm dispatcher keeps the handles it got and does not ask again.
  void clear_memory_cache();

  KernelRegistry();
  ~KernelRegistry();
  KernelRegistry(const KernelRegistry&) = delete;
  KernelRegistry& operator=(const KernelRegistry&) = delete;

  struct State;

 private:
  State* state_;
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

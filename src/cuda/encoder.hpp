// The CUDA backend's encoder: a stream, wait(), persistent workspaces, and launches of registry
// kernels. It knows kernels and launch shapes, never ops: each op's CUDA half (src/cuda/<op>_*)
// plans a launch and hands it here.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "cuda/device_caps.hpp"
#include "l2norm/error.hpp"
#include "l2norm/registry.hpp"

namespace l2norm::detail::cuda {

// A zeroed device area every CUDA encoder owns, for kernels that keep state across dispatches
// (such as partial sums exchanged by co-resident blocks). An op declares one as a namespace-scope
// object; every encoder created afterwards allocates it and zeroes it on its stream before any of
// its dispatches, so even a first dispatch inside a CUDA-graph capture finds it ready. A kernel
// that uses it must leave it in a state its next dispatch accepts.
class Workspace {
 public:
  using Bytes = std::size_t (*)(const DeviceCaps& caps);
  // `size` gives the area's bytes on a device; `name` appears in error messages.
  Workspace(const char* name, Bytes size);
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  const char* name() const noexcept { return name_; }
  std::size_t bytes(const DeviceCaps& caps) const { return bytes_(caps); }
  std::size_t index() const noexcept { return index_; }

 private:
  const char* name_;
  Bytes bytes_;
  std::size_t index_;
};

// One kernel launch, as a planner describes it.
struct Launch {
  void* kernel = nullptr;
  std::uint32_t grid = 1;
  std::uint32_t block = 1;
  std::size_t dynamic_shared_bytes = 0;
  // All blocks co-resident (the grid fits the device at once).
  bool cooperative = false;
  // May overlap the previous kernel's tail (programmatic stream serialization; the kernel waits
  // for its predecessor before touching memory). Applied only where the encoder allows it.
  bool programmatic = false;
};

class Encoder final : public EncoderImpl {
 public:
  // On `stream` (not owned), or on a stream of its own when it is nullptr.
  Encoder(int device_index, void* stream);
  ~Encoder() override;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  int device_index() const noexcept { return device().index(); }
  const DeviceCaps& caps() const noexcept { return caps_; }
  cudaStream_t stream() const noexcept { return stream_; }

  // The loaded kernel of `identity` (KernelRegistry::kernel), compiled on first use. While the
  // stream is being captured into a CUDA graph a kernel that is not loaded yet raises
  // Error(unsupported) instead, which leaves the capture intact.
  template <typename Identity>
  void* kernel(const Identity& identity) {
    KernelRegistry& registry = KernelRegistry::global();
    if (void* loaded = registry.loaded_kernel(device(), identity)) return loaded;
    register_embedded_sources();
    if (capturing()) {
      CompileGuard no_compiling;
      return registry.kernel(device(), identity);
    }
    return registry.kernel(device(), identity);
  }

  // Enqueues `launch` with `parameters` (one pointer per kernel parameter). `what` names the
  // launch in errors.
  void launch(const Launch& launch, void** parameters, const char* what);
  // This encoder's instance of `workspace`.
  void* workspace(const Workspace& workspace) const;

  void wait() override;
  void* cuda_stream() const noexcept override { return stream_; }

  // Registers every embedded kernel source in the global registry (once per process).
  static void register_embedded_sources();

 private:
  bool capturing() const;
  void release() noexcept;

  const DeviceCaps& caps_;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  cudaEvent_t batch_end_ = nullptr;
  std::vector<void*> workspaces_;
};

// The CUDA encoder behind `impl`, which an op's dispatch reaches only for CUDA devices.
inline Encoder& encoder_of(EncoderImpl& impl) {
  return static_cast<Encoder&>(impl);
}

// The loaded kernel of `identity` (Encoder::kernel). A miss during a CUDA-graph capture raises
// Error(unsupported) with `prewarm_hint`, which says how to load the kernel ahead, in parentheses
// after the encoder's message.
template <typename Identity>
void* kernel_for(Encoder& encoder, const Identity& identity, const char* prewarm_hint) {
  try {
    return encoder.kernel(identity);
  } catch (const Error& error) {
    if (error.code() != ErrorCode::unsupported) throw;
    throw Error(ErrorCode::unsupported, std::string(error.what()) + " (" + prewarm_hint + ")");
  }
}

// The launch of `kernel` in the shape of `plan`: its grid, block, dynamic shared memory and
// cooperative and programmatic flags.
template <typename Plan>
Launch plan_launch(void* kernel, const Plan& plan) {
  Launch launch;
  launch.kernel = kernel;
  launch.grid = static_cast<std::uint32_t>(plan.grid);
  launch.block = static_cast<std::uint32_t>(plan.block);
  launch.dynamic_shared_bytes = plan.dynamic_shared_bytes;
  launch.cooperative = plan.cooperative;
  launch.programmatic = plan.programmatic;
  return launch;
}

// Loads every kernel of `variants` on CUDA device `device_index` into the global registry,
// compiling those it does not hold yet.
template <typename Variants>
void load_kernels(int device_index, const Variants& variants) {
  const Device device = Device::cuda(device_index);
  Encoder::register_embedded_sources();
  for (const auto& variant : variants) KernelRegistry::global().kernel(device, variant);
}

}  // namespace l2norm::detail::cuda

#include "cuda/encoder.hpp"

#include <mutex>

#include "cuda/embedded_kernels.hpp"
#include "cuda/runtime.hpp"
#include "l2norm/error.hpp"

namespace l2norm::detail::cuda {

namespace {

// Every Workspace declared so far, in declaration order.
std::vector<const Workspace*>& declared_workspaces() {
  static std::vector<const Workspace*> workspaces;
  return workspaces;
}

std::mutex& workspaces_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

Workspace::Workspace(const char* name, Bytes size) : name_(name), bytes_(size) {
  std::lock_guard lock(workspaces_mutex());
  index_ = declared_workspaces().size();
  declared_workspaces().push_back(this);
}

Encoder::Encoder(int device_index, void* stream)
    : EncoderImpl(Device::cuda(device_index)), caps_(device_caps(device_index)) {
  DeviceScope scope(device_index);
  if (stream == nullptr) {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    owns_stream_ = true;
  } else {
    stream_ = static_cast<cudaStream_t>(stream);
    // The workspaces below are allocated and zeroed now, which a capture does not allow (the
    // allocation would invalidate it, the zeroing would be recorded instead of done): refuse
    // before touching anything, so the capture stays intact.
    if (capturing()) {
      throw Error(ErrorCode::unsupported,
                  "CommandEncoder: the stream of " + device().name() +
                      " is being captured into a CUDA graph, and an encoder allocates and zeroes "
                      "its workspaces when it is made; make the encoder for this stream before "
                      "the capture begins (and prewarm the op's kernels)");
    }
  }
  try {
    check(cudaEventCreateWithFlags(&batch_end_, cudaEventDisableTiming), "cudaEventCreate");
    std::vector<const Workspace*> declared;
    {
      std::lock_guard lock(workspaces_mutex());
      declared = declared_workspaces();
    }
    for (const Workspace* workspace : declared) {
      const std::size_t bytes = workspace->bytes(caps_);
      void* memory = nullptr;
      const cudaError_t allocated = cudaMalloc(&memory, bytes);
      if (allocated != cudaSuccess) {
        throw_cuda_error(allocated, std::string("cudaMalloc of the ") + workspace->name() +
                                        " workspace (" + std::to_string(bytes) + " bytes)");
      }
      workspaces_.push_back(memory);
      check(cudaMemsetAsync(memory, 0, bytes, stream_), "cudaMemsetAsync of a workspace");
    }
  } catch (...) {
    release();
    throw;
  }
}

Encoder::~Encoder() {
  release();
}

void Encoder::release() noexcept {
  for (void* memory : workspaces_) cudaFree(memory);
  workspaces_.clear();
  if (batch_end_ != nullptr) cudaEventDestroy(batch_end_);
  if (owns_stream_ && stream_ != nullptr) cudaStreamDestroy(stream_);
}

void* Encoder::workspace(const Workspace& workspace) const {
  if (workspace.index() >= workspaces_.size()) {
    throw Error(ErrorCode::backend, std::string("the ") + workspace.name() +
                                        " workspace was declared after this encoder was made");
  }
  return workspaces_[workspace.index()];
}

bool Encoder::capturing() const {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream_, &capture), "cudaStreamIsCapturing");
  return capture != cudaStreamCaptureStatusNone;
}

void Encoder::register_embedded_sources() {
  static std::once_flag registered;
  std::call_once(registered, [] {
    KernelRegistry& registry = KernelRegistry::global();
    for (const EmbeddedSource& source : embedded_kernel_sources()) {
      registry.register_source(source.name, source.text);
    }
  });
}

void Encoder::launch(const Launch& launch, void** parameters, const char* what) {
  DeviceScope scope(device_index());
  cudaLaunchAttribute attributes[2]{};
  unsigned int count = 0;
  if (launch.cooperative) {
    attributes[count].id = cudaLaunchAttributeCooperative;
    attributes[count].val.cooperative = 1;
    ++count;
  }
  if (launch.programmatic && launch_overlap()) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(launch.grid);
  config.blockDim = dim3(launch.block);
  config.dynamicSmemBytes = launch.dynamic_shared_bytes;
  config.stream = stream_;
  config.attrs = attributes;
  config.numAttrs = count;
  check(cudaLaunchKernelExC(&config, launch.kernel, parameters), what);
}

// Marks the stream's position and awaits it. Nothing happens at commit(): every dispatch is
// already on the stream, and an event recorded per commit would add host time to every dispatch
// of a caller who commits each one.
void Encoder::wait() {
  DeviceScope scope(device_index());
  check(cudaEventRecord(batch_end_, stream_), "cudaEventRecord");
  check(cudaEventSynchronize(batch_end_), "cudaEventSynchronize");
}

std::unique_ptr<EncoderImpl> make_encoder(int device_index, void* stream) {
  return std::make_unique<Encoder>(device_index, stream);
}

}  // namespace l2norm::detail::cuda

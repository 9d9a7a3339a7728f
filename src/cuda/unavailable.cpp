// The CUDA backend of a build without CUDA (L2NORM_CUDA=OFF or no toolkit found): every entry
// point reports the backend absent, with the reason, instead of failing in some other way.
#include "core/backend.hpp"
#include "core/kernel_backend.hpp"
#include "l2norm/error.hpp"

namespace l2norm::detail {

namespace {

constexpr const char* kReason =
    "l2norm was built without the CUDA backend (L2NORM_CUDA=OFF or no CUDA toolkit found)";

[[noreturn]] void unsupported(const std::string& what) {
  throw Error(ErrorCode::unsupported, what + ": " + kReason);
}

}  // namespace

namespace cuda {

bool available() noexcept {
  return false;
}

std::string unavailable_reason() {
  return kReason;
}

int device_count() noexcept {
  return 0;
}

std::vector<DeviceInfo> devices() {
  return {};
}

std::unique_ptr<EncoderImpl> make_encoder(int device_index, void*) {
  unsupported("cuda:" + std::to_string(device_index) + " encoder");
}

void* allocate(int device_index, std::size_t bytes) {
  unsupported("cuda:" + std::to_string(device_index) + " allocation of " + std::to_string(bytes) +
              " bytes");
}

// Nothing can have been allocated on a device this build cannot reach.
void release(int, void*) noexcept {}

void copy_to_device(int device_index, void*, const void*, std::size_t) {
  unsupported("copy to cuda:" + std::to_string(device_index));
}

void copy_to_host(int device_index, void*, const void*, std::size_t) {
  unsupported("copy from cuda:" + std::to_string(device_index));
}

}  // namespace cuda

namespace kernel_backend {

std::string compiler_identity() {
  unsupported("KernelRegistry: compiling kernels");
}

int device_arch(const Device& device) {
  unsupported("KernelRegistry: kernels for " + device.name());
}

std::vector<std::string> base_options(int arch) {
  unsupported("KernelRegistry: compiling for sm_" + std::to_string(arch));
}

std::vector<char> compile(const NamedSource& source, const std::vector<NamedSource>&,
                          const std::vector<std::string>&, bool*) {
  unsupported("KernelRegistry: compiling '" + source.name + "'");
}

void* load(const Device& device, const std::vector<char>&, const std::string& entry, std::size_t) {
  unsupported("KernelRegistry: loading '" + entry + "' on " + device.name());
}

}  // namespace kernel_backend

}  // namespace l2norm::detail

// kernel_backend on NVRTC and the CUDA runtime: compiles to a cubin for the exact arch
// (-arch=sm_XY, nvrtcGetCUBIN) and loads it with cudaLibraryLoadData, so no libcuda link is needed.
#include <cuda_runtime_api.h>
#include <nvrtc.h>

#include <string>
#include <string_view>

#include "core/kernel_backend.hpp"
#include "cuda/runtime.hpp"
#include "l2norm/error.hpp"

namespace l2norm::detail::kernel_backend {

namespace {

std::string join_options(const std::vector<std::string>& options) {
  std::string text;
  for (const auto& option : options) text += (text.empty() ? "" : " ") + option;
  return text;
}

// Owns one nvrtcProgram.
class Program {
 public:
  Program(const NamedSource& source, const std::vector<NamedSource>& headers) {
    std::vector<const char*> header_texts;
    std::vector<const char*> header_names;
    for (const auto& header : headers) {
      header_texts.push_back(header.text.c_str());
      header_names.push_back(header.name.c_str());
    }
    const nvrtcResult status = nvrtcCreateProgram(
        &program_, source.text.c_str(), source.name.c_str(), static_cast<int>(headers.size()),
        header_texts.data(), header_names.data());
    if (status != NVRTC_SUCCESS) {
      throw Error(ErrorCode::compile, "nvrtcCreateProgram for '" + source.name +
                                          "' failed: " + nvrtcGetErrorString(status));
    }
  }
  ~Program() { nvrtcDestroyProgram(&program_); }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  nvrtcProgram get() const { return program_; }

  std::string log() const {
    std::size_t size = 0;
    if (nvrtcGetProgramLogSize(program_, &size) != NVRTC_SUCCESS || size == 0) return {};
    std::string text(size, '\0');
    nvrtcGetProgramLog(program_, text.data());
    while (!text.empty() && (text.back() == '\0' || text.back() == '\n')) text.pop_back();
    return text;
  }

 private:
  nvrtcProgram program_ = nullptr;
};

// Whether ptxas's report (--ptxas-options=-v) in `log` names spill stores of more than 0 bytes:
// "ptxas . 0 bytes stack frame, 16 bytes spill stores, 16 bytes spill loads".
bool log_reports_spills(const std::string& log) {
  constexpr std::string_view kSpillStores = " bytes spill stores";
  for (std::size_t at = log.find(kSpillStores); at != std::string::npos;
       at = log.find(kSpillStores, at + kSpillStores.size())) {
    std::size_t digits = at;
    while (digits > 0 && log[digits - 1] >= '0' && log[digits - 1] <= '9') --digits;
    if (digits == at) continue;
    for (std::size_t i = digits; i < at; ++i) {
      if (log[i] != '0') return true;
    }
  }
  return false;
}

}  // namespace

std::string compiler_identity() {
  int major = 0;
  int minor = 0;
  nvrtcVersion(&major, &minor);
  return "NVRTC " + std::to_string(major) + "." + std::to_string(minor);
}

int device_arch(const Device& device) {
  return cuda::device_caps(device.index()).arch;
}

std::vector<std::string> base_options(int arch) {
  // No fast math (flush-to-zero and approximate division would break the semantics); no FMA
  // contraction, so every multiply and add is rounded as written.
  return {"-arch=sm_" + std::to_string(arch), "-std=c++17", "--fmad=false", "-default-device"};
}

std::vector<char> compile(const NamedSource& source, const std::vector<NamedSource>& headers,
                          const std::vector<std::string>& options, bool* spills) {
  Program program(source, headers);
  std::vector<const char*> option_pointers;
  for (const auto& option : options) option_pointers.push_back(option.c_str());
  if (spills != nullptr) option_pointers.push_back("--ptxas-options=-v");
  const nvrtcResult status = nvrtcCompileProgram(
      program.get(), static_cast<int>(option_pointers.size()), option_pointers.data());
  if (status != NVRTC_SUCCESS) {
    throw Error(ErrorCode::compile, "NVRTC could not compile '" + source.name + "' (" +
                                        nvrtcGetErrorString(status) + ") with options [" +
                                        join_options(options) + "]:\n" + program.log());
  }
  std::size_t size = 0;
  if (nvrtcGetCUBINSize(program.get(), &size) != NVRTC_SUCCESS || size == 0) {
    throw Error(ErrorCode::compile, "NVRTC produced no cubin for '" + source.name +
                                        "' with options [" + join_options(options) +
                                        "] (the -arch option must name a real sm_XY)");
  }
  std::vector<char> cubin(size);
  nvrtcGetCUBIN(program.get(), cubin.data());
  if (spills != nullptr) *spills = log_reports_spills(program.log());
  return cubin;
}

void* load(const Device& device, const std::vector<char>& binary, const std::string& entry,
           std::size_t max_dynamic_shared_bytes) {
  cuda::DeviceScope scope(device.index());
  cudaLibrary_t library = nullptr;
  cuda::check(
      cudaLibraryLoadData(&library, binary.data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
      "cudaLibraryLoadData");
  cudaKernel_t kernel = nullptr;
  const cudaError_t status = cudaLibraryGetKernel(&kernel, library, entry.c_str());
  if (status != cudaSuccess) {
    cudaLibraryUnload(library);
    cuda::throw_cuda_error(status, "cudaLibraryGetKernel('" + entry + "')");
  }
  if (max_dynamic_shared_bytes > 0) {
    cuda::check(
        cudaKernelSetAttributeForDevice(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(max_dynamic_shared_bytes), device.index()),
        "cudaKernelSetAttributeForDevice(MaxDynamicSharedMemorySize)");
  }
  return kernel;
}

}  // namespace l2norm::detail::kernel_backend

// l2norm._core: the C++ library seen from Python. Arrays come in through DLPack (nb::ndarray, no
// copy; shapes and strides passed to TensorView as they are, so the library's own validation
// decides what a view may be); the caller allocates the output. The pure-Python package
// (python/l2norm/*.py) picks the stream and the output array for each producer.
//
// Adding an op (rstd output, backward, the q+k pair) is one more function here built from the
// same pieces: view_of() for each array, cached_encoder() for the queue, options_of() for the
// options, and the GIL released around the library call.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "l2norm/l2norm.hpp"

namespace nb = nanobind;

namespace {

// DLPack codes (dlpack.h): device types and the bfloat type code.
constexpr std::int32_t kDLCPU = 1;
constexpr std::int32_t kDLCUDA = 2;
constexpr std::int32_t kDLCUDAHost = 3;
constexpr std::int32_t kDLCUDAManaged = 13;
constexpr std::uint8_t kDLBfloat = 4;

PyObject* l2norm_error_type = nullptr;

l2norm::Error invalid(const std::string& message) {
  return l2norm::Error(l2norm::ErrorCode::invalid_argument, message);
}

std::string dtype_text(const nb::dlpack::dtype& dtype) {
  static const char* const kCodes[] = {"int",    "uint",    "float", "opaque",
                                       "bfloat", "complex", "bool"};
  const std::string code =
      dtype.code < 7 ? kCodes[dtype.code] : "code" + std::to_string(dtype.code);
  return code + std::to_string(dtype.bits) +
         (dtype.lanes != 1 ? "x" + std::to_string(dtype.lanes) : "");
}

// bf16_bits: the array holds uint16 bit patterns of bfloat16 values (NumPy arrays of ml_dtypes'
// bfloat16, which NumPy cannot export through DLPack, arrive as a uint16 view).
l2norm::DType dtype_of(const nb::dlpack::dtype& dtype, bool bf16_bits, const char* role) {
  const auto code = static_cast<nb::dlpack::dtype_code>(dtype.code);
  if (dtype.lanes == 1 && dtype.bits == 32 && code == nb::dlpack::dtype_code::Float) {
    return l2norm::DType::f32;
  }
  if (dtype.lanes == 1 && dtype.bits == 16) {
    if (code == nb::dlpack::dtype_code::Float) return l2norm::DType::f16;
    if (dtype.code == kDLBfloat) return l2norm::DType::bf16;
    if (bf16_bits && code == nb::dlpack::dtype_code::UInt) return l2norm::DType::bf16;
  }
  throw invalid(std::string("l2_norm: ") + role + " has dtype " + dtype_text(dtype) +
                "; supported: float32, float16, bfloat16");
}

l2norm::Device device_of(std::int32_t device_type, std::int32_t device_id, const char* role) {
  switch (device_type) {
    case kDLCPU:
    case kDLCUDAHost:
      return l2norm::Device::cpu();
    case kDLCUDA:
    case kDLCUDAManaged:
      return l2norm::Device::cuda(device_id);
    default:
      throw invalid(std::string("l2_norm: ") + role + " lives on DLPack device type " +
                    std::to_string(device_type) + "; supported: CPU and CUDA memory");
  }
}

template <class Array>
l2norm::TensorView view_of(const Array& array, bool bf16_bits, const char* role) {
  const auto rank = static_cast<std::size_t>(array.ndim());
  const l2norm::DType dtype = dtype_of(array.dtype(), bf16_bits, role);
  const l2norm::Device device = device_of(array.device_type(), array.device_id(), role);
  // DLPack strides are in elements, as TensorView's are; null strides mean a compact row-major
  // array (producers such as NumPy may export contiguous arrays so). The library rejects rank 0
  // and > 4, negative strides and a non-unit last stride with its own messages.
  void* const data = const_cast<void*>(static_cast<const void*>(array.data()));
  const std::span<const std::int64_t> shape(array.shape_ptr(), rank);
  if (array.stride_ptr() == nullptr) return l2norm::TensorView(data, dtype, device, shape);
  return l2norm::TensorView(data, dtype, device, shape,
                            std::span<const std::int64_t>(array.stride_ptr(), rank));
}

l2norm::L2NormOptions options_of(float eps, float scale, bool clamp) {
  return {.eps = eps,
          .scale = scale,
          .eps_mode = clamp ? l2norm::EpsMode::clamp : l2norm::EpsMode::add};
}

// One encoder per (thread, device, stream): encoders are not shared between threads, so the
// cache needs no lock, and a repeated call reuses its stream binding and workspaces.
l2norm::CommandEncoder& cached_encoder(const l2norm::Device& device, std::uintptr_t stream) {
  struct Entry {
    l2norm::Device device;
    std::uintptr_t stream;
    std::unique_ptr<l2norm::CommandEncoder> encoder;
  };
  thread_local std::vector<Entry> cache;
  for (Entry& entry : cache) {
    if (entry.stream == stream && entry.device == device) return *entry.encoder;
  }
  auto encoder = device.is_cpu() ? std::make_unique<l2norm::CommandEncoder>(device)
                                 : std::make_unique<l2norm::CommandEncoder>(
                                       device, reinterpret_cast<void*>(stream));
  cache.push_back({device, stream, std::move(encoder)});
  return *cache.back().encoder;
}

using Input = nb::ndarray<nb::ro>;
using Output = nb::ndarray<>;

void l2_norm(const Input& input, const Output& output, float eps, float scale, bool clamp,
             std::uintptr_t stream, bool bf16_bits) {
  const l2norm::TensorView input_view = view_of(input, bf16_bits, "input");
  const l2norm::TensorView output_view = view_of(output, bf16_bits, "output");
  // The Python API writes x's dtype (`out` must have it; out_dtype is not wired yet), and
  // bf16_bits reads both arrays' uint16 bits as bfloat16.
  if (output_view.dtype() != input_view.dtype()) {
    throw invalid(std::string("l2_norm: output dtype ") +
                  std::string(l2norm::dtype_name(output_view.dtype())) +
                  " differs from input dtype " +
                  std::string(l2norm::dtype_name(input_view.dtype())));
  }
  if (input_view.device().is_cuda() && stream == 0) {
    throw invalid("l2_norm: a CUDA array needs a stream (DLPack: 1 is the legacy default stream)");
  }
  const l2norm::L2NormOptions options = options_of(eps, scale, clamp);
  nb::gil_scoped_release released;
  l2norm::CommandEncoder& encoder =
      cached_encoder(input_view.device(), input_view.device().is_cpu() ? 0 : stream);
  l2norm::l2_norm(encoder, input_view, output_view, options);
  encoder.commit();
}

void prewarm(const std::string& device, const std::string& dtype, std::int64_t dim, float eps,
             float scale, bool clamp) {
  const l2norm::Device parsed_device = l2norm::Device::parse(device);
  const l2norm::DType parsed_dtype = l2norm::parse_dtype(dtype);
  nb::gil_scoped_release released;
  l2norm::prewarm_l2_norm(parsed_device, parsed_dtype, dim, options_of(eps, scale, clamp));
}

std::vector<std::string> devices() {
  std::vector<std::string> descriptions;
  for (const l2norm::DeviceInfo& info : l2norm::list_devices()) {
    descriptions.push_back(info.device.name() + ": " + info.description);
  }
  return descriptions;
}

// invalid_argument is the caller's mistake: ValueError. Everything else (unsupported, device,
// compile, out of memory) is L2NormError, a RuntimeError whose .code names the ErrorCode.
void translate_error(const std::exception_ptr& pointer, void*) {
  try {
    std::rethrow_exception(pointer);
  } catch (const l2norm::Error& error) {
    if (error.code() == l2norm::ErrorCode::invalid_argument) {
      PyErr_SetString(PyExc_ValueError, error.what());
      return;
    }
    nb::object exception = nb::borrow(l2norm_error_type)(error.what());
    exception.attr("code") = nb::str(std::string(l2norm::error_code_name(error.code())).c_str());
    PyErr_SetObject(l2norm_error_type, exception.ptr());
  }
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "The l2norm C++ library (CPU and CUDA backends) behind the l2norm package.";
  l2norm_error_type = PyErr_NewExceptionWithDoc(
      "l2norm.L2NormError",
      "A failure of the device, the kernel compiler or the backend (a RuntimeError). `code` names "
      "the library's ErrorCode: 'unsupported', 'out_of_memory', 'backend', 'compile' or 'io'.",
      PyExc_RuntimeError, nullptr);
  m.attr("L2NormError") = nb::handle(l2norm_error_type);
  nb::register_exception_translator(translate_error);

  m.attr("__version__") = L2NORM_VERSION_STRING;
  m.def("l2_norm", &l2_norm, nb::arg("input"), nb::arg("output"), nb::arg("eps"), nb::arg("scale"),
        nb::arg("clamp"), nb::arg("stream"), nb::arg("bf16_bits"),
        "Normalizes the rows of `input` into `output` (same shape and dtype, any DLPack array on "
        "the CPU or a CUDA device). `stream` is the cudaStream_t to run on as an integer (DLPack "
        "conventions: 1 the legacy default stream, 2 the per-thread one); ignored on the CPU. "
        "`bf16_bits`: uint16 arrays hold bfloat16 bit patterns. Releases the GIL while it works.");
  m.def(
      "prewarm", &prewarm, nb::arg("device"), nb::arg("dtype"), nb::arg("dim"), nb::arg("eps"),
      nb::arg("scale"), nb::arg("clamp"),
      "Compiles every kernel l2_norm may pick on `device` for rows of `dim` `dtype` elements, so "
      "later calls need no compilation (and may be captured into a CUDA graph). No-op on the CPU.");
  m.def("cuda_available", &l2norm::cuda_available,
        "True when this build has the CUDA backend and a usable CUDA device is present.");
  m.def("cuda_unavailable_reason", &l2norm::cuda_unavailable_reason,
        "Why the CUDA backend cannot be used here, or an empty string.");
  m.def("devices", &devices, "'cpu: ...' and 'cuda:N: ...' descriptions of the usable devices.");
  m.def("set_cpu_thread_count", &l2norm::set_cpu_thread_count, nb::arg("n"),
        "Worker threads of the CPU backend (results are the same bits whatever the count); "
        "n < 1 restores the default.");
  m.def("cpu_thread_count", &l2norm::cpu_thread_count, "Worker threads the CPU backend uses.");
}

// l2norm._core: the C++ library seen from Python. The caller allocates every output; the
// pure-Python package (python/l2norm/*.py) picks the output arrays for each producer.
//
// Arrays come in with no copy, through one of two doors:
//   - the DLPack C exchange API (DLPack 1.3: a `__dlpack_c_exchange_api__` capsule on the array's
//     type, which PyTorch offers): a C call fills a DLTensor and another names the producer's
//     current stream, with no Python objects made;
//   - nanobind's ndarray import otherwise (`__dlpack__`, the buffer protocol: NumPy, CuPy, JAX).
// Shapes and strides go to TensorView as they are, so the library's own validation decides what a
// view may be. Each op is one function built from the same pieces: Arg for each array,
// resolve_stream() for the queue, run_on() for the encoder, the GIL released around the library.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "l2norm/l2norm.hpp"

namespace nb = nanobind;

namespace {

// DLPack codes (dlpack.h): device types and the bfloat type code.
constexpr std::int32_t kDLCPU = 1;
constexpr std::int32_t kDLCUDA = 2;
constexpr std::int32_t kDLCUDAHost = 3;
constexpr std::int32_t kDLCUDAManaged = 13;
constexpr std::uint8_t kDLFloat = 2;
constexpr std::uint8_t kDLUInt = 1;
constexpr std::uint8_t kDLBfloat = 4;
// DLPack's stream conventions: 1 is CUDA's legacy default stream, 2 the per-thread default one.
constexpr std::uintptr_t kLegacyDefaultStream = 1;

// ---- the DLPack C exchange API (dlpack.h, DLPACK_MAJOR_VERSION 1), the parts read here ----
struct DLDevice {
  std::int32_t device_type;
  std::int32_t device_id;
};
struct DLDataType {
  std::uint8_t code;
  std::uint8_t bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;
  std::uint64_t byte_offset;
};
struct DLPackVersion {
  std::uint32_t major;
  std::uint32_t minor;
};
struct ExchangeApiHeader {
  DLPackVersion version;
  ExchangeApiHeader* prev_api;
};
struct ExchangeApi {
  ExchangeApiHeader header;
  void* managed_tensor_allocator;
  void* managed_tensor_from_py_object_no_sync;
  void* managed_tensor_to_py_object_no_sync;
  // Fills `out` with a non-owning view valid until control returns to Python; 0 or -1 with a
  // Python exception set. May be null.
  int (*dltensor_from_py_object_no_sync)(void* py_object, DLTensor* out);
  // The producer's current stream of a device (null: the legacy default stream); 0 or -1.
  int (*current_work_stream)(std::int32_t device_type, std::int32_t device_id, void** out_stream);
};

// False makes every array go through nanobind's import, as for producers without the exchange API
// (the tests use it to check that door with PyTorch tensors).
bool exchange_api_enabled = true;

// The exchange API of a type, or nullptr where it offers none (or none this code can read).
// Looked up once per type and cached (the cache holds a reference to each type, so an address is
// never reused for another type). Runs with the GIL held.
const ExchangeApi* exchange_api_of(PyTypeObject* type) {
  if (!exchange_api_enabled) return nullptr;
  struct Entry {
    PyTypeObject* type;
    const ExchangeApi* api;
  };
  static std::vector<Entry> cache;
  for (const Entry& entry : cache) {
    if (entry.type == type) return entry.api;
  }
  const ExchangeApi* api = nullptr;
  PyObject* capsule =
      PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__dlpack_c_exchange_api__");
  if (capsule == nullptr) {
    PyErr_Clear();
  } else {
    auto* header =
        static_cast<ExchangeApiHeader*>(PyCapsule_GetPointer(capsule, "dlpack_exchange_api"));
    if (header == nullptr) PyErr_Clear();
    while (header != nullptr && header->version.major > 1) header = header->prev_api;
    if (header != nullptr && header->version.major == 1) {
      const auto* candidate = reinterpret_cast<const ExchangeApi*>(header);
      if (candidate->dltensor_from_py_object_no_sync != nullptr &&
          candidate->current_work_stream != nullptr) {
        api = candidate;
      }
    }
    Py_DECREF(capsule);
  }
  Py_INCREF(reinterpret_cast<PyObject*>(type));
  cache.push_back({type, api});
  return api;
}

PyObject* l2norm_error_type = nullptr;

l2norm::Error invalid(const std::string& message) {
  return l2norm::Error(l2norm::ErrorCode::invalid_argument, message);
}

std::string dtype_text(const DLDataType& dtype) {
  static const char* const kCodes[] = {"int",    "uint",    "float", "opaque",
                                       "bfloat", "complex", "bool"};
  const std::string code =
      dtype.code < 7 ? kCodes[dtype.code] : "code" + std::to_string(dtype.code);
  return code + std::to_string(dtype.bits) +
         (dtype.lanes != 1 ? "x" + std::to_string(dtype.lanes) : "");
}

// bf16_bits: the array holds uint16 bit patterns of bfloat16 values (NumPy arrays of ml_dtypes'
// bfloat16, which NumPy cannot export through DLPack, arrive as a uint16 view).
l2norm::DType dtype_of(const DLDataType& dtype, bool bf16_bits, const char* op, const char* role) {
  if (dtype.lanes == 1 && dtype.bits == 32 && dtype.code == kDLFloat) return l2norm::DType::f32;
  if (dtype.lanes == 1 && dtype.bits == 16) {
    if (dtype.code == kDLFloat) return l2norm::DType::f16;
    if (dtype.code == kDLBfloat) return l2norm::DType::bf16;
    if (bf16_bits && dtype.code == kDLUInt) return l2norm::DType::bf16;
  }
  throw invalid(std::string(op) + ": " + role + " has dtype " + dtype_text(dtype) +
                "; supported: float32, float16, bfloat16");
}

l2norm::Device device_of(std::int32_t device_type, std::int32_t device_id, const char* op,
                         const char* role) {
  switch (device_type) {
    case kDLCPU:
    case kDLCUDAHost:
      return l2norm::Device::cpu();
    case kDLCUDA:
    case kDLCUDAManaged:
      return l2norm::Device::cuda(device_id);
    default:
      throw invalid(std::string(op) + ": " + role + " lives on DLPack device type " +
                    std::to_string(device_type) + "; supported: CPU and CUDA memory");
  }
}

// One array argument, viewed with no copy. `flat` views the array as 1-D (the rstd arrays: any
// rank, one value per row in row-major order); otherwise shapes and strides pass as they are.
// DLPack strides are in elements, as TensorView's are; null strides mean a compact row-major array.
// The library rejects rank 0 and > 4, negative strides and a non-unit last stride with its own
// messages. The view stays valid while the Python argument is alive and the call has not returned.
class Arg {
 public:
  Arg(nb::handle object, bool writable, bool bf16_bits, bool flat, const char* op,
      const char* role) {
    api_ = exchange_api_of(Py_TYPE(object.ptr()));
    if (api_ != nullptr) {
      DLTensor tensor{};
      if (api_->dltensor_from_py_object_no_sync(object.ptr(), &tensor) != 0) {
        throw nb::python_error();
      }
      set(static_cast<char*>(tensor.data) + tensor.byte_offset, tensor.device, tensor.ndim,
          tensor.dtype, tensor.shape, tensor.strides, bf16_bits, flat, op, role);
      return;
    }
    // convert=false: never a copy (a copy would leave an output unwritten).
    const bool imported =
        writable ? nb::try_cast(object, writable_, false) : nb::try_cast(object, read_only_, false);
    if (!imported) {
      throw nb::type_error((std::string(op) + ": " + role + " is not a " +
                            (writable ? "writable " : "") +
                            "DLPack array (any DLPack producer or buffer: NumPy, PyTorch, "
                            "CuPy, JAX)")
                               .c_str());
    }
    const DLDataType dtype = writable ? DLDataType{writable_.dtype().code, writable_.dtype().bits,
                                                   writable_.dtype().lanes}
                                      : DLDataType{read_only_.dtype().code, read_only_.dtype().bits,
                                                   read_only_.dtype().lanes};
    const auto pick = [&](const auto& array) {
      set(const_cast<void*>(static_cast<const void*>(array.data())),
          DLDevice{array.device_type(), array.device_id()}, static_cast<std::int32_t>(array.ndim()),
          dtype, const_cast<std::int64_t*>(array.shape_ptr()),
          const_cast<std::int64_t*>(array.stride_ptr()), bf16_bits, flat, op, role);
    };
    if (writable) {
      pick(writable_);
    } else {
      pick(read_only_);
    }
  }

  const l2norm::TensorView& view() const { return *view_; }
  // The producer's exchange API, where it has one.
  const ExchangeApi* api() const { return api_; }

 private:
  void set(void* data, DLDevice device, std::int32_t ndim, DLDataType dtype,
           const std::int64_t* shape, const std::int64_t* strides, bool bf16_bits, bool flat,
           const char* op, const char* role) {
    const l2norm::DType parsed_dtype = dtype_of(dtype, bf16_bits, op, role);
    const l2norm::Device parsed_device = device_of(device.device_type, device.device_id, op, role);
    if (ndim < 0) throw invalid(std::string(op) + ": " + role + " has a negative rank");
    const auto rank = static_cast<std::size_t>(ndim);
    if (flat) {
      view_.emplace(data, parsed_dtype, parsed_device, std::array{count(shape, rank)},
                    std::array{flat_stride(shape, strides, rank, op, role)});
    } else if (strides == nullptr) {
      view_.emplace(data, parsed_dtype, parsed_device, std::span(shape, rank));
    } else {
      view_.emplace(data, parsed_dtype, parsed_device, std::span(shape, rank),
                    std::span(strides, rank));
    }
  }

  static std::int64_t count(const std::int64_t* shape, std::size_t rank) {
    std::int64_t total = 1;
    for (std::size_t i = 0; i < rank; ++i) {
      if (__builtin_mul_overflow(total, shape[i], &total)) total = -1;
    }
    return total;
  }

  // The one stride that walks every element in row-major order: each dim of size > 1 steps by the
  // elements of the dims inside it times the innermost such stride.
  static std::int64_t flat_stride(const std::int64_t* shape, const std::int64_t* strides,
                                  std::size_t rank, const char* op, const char* role) {
    if (strides == nullptr) return 1;
    std::int64_t step = 0;
    std::int64_t inner = 1;
    for (std::size_t i = rank; i-- > 0;) {
      if (shape[i] == 1) continue;
      if (step == 0) step = strides[i];
      std::int64_t expected = 0;
      if (__builtin_mul_overflow(step, inner, &expected) || strides[i] != expected) {
        std::string dims;
        for (std::size_t j = 0; j < rank; ++j) {
          dims += (j ? ", " : "") + std::to_string(shape[j]) + ":" + std::to_string(strides[j]);
        }
        throw invalid(
            std::string(op) + ": " + role +
            " must hold one value per row in row-major order with one stride (size:stride " + dims +
            ")");
      }
      inner *= shape[i];
    }
    return step == 0 ? 1 : step;
  }

  const ExchangeApi* api_ = nullptr;
  nb::ndarray<nb::ro> read_only_;
  nb::ndarray<> writable_;
  std::optional<l2norm::TensorView> view_;
};

// The stream a call on `device` runs on: `stream` where given (DLPack conventions, 0 refused for
// CUDA), else the producer's current stream where its type has the exchange API, else the legacy
// default stream. 0 on the CPU. Runs with the GIL held.
std::uintptr_t resolve_stream(const l2norm::Device& device, std::optional<std::uintptr_t> stream,
                              const ExchangeApi* api, const char* op) {
  if (device.is_cpu()) return 0;
  if (stream.has_value()) {
    if (*stream == 0) {
      throw invalid(std::string(op) +
                    ": a CUDA array needs a stream (DLPack: 1 is the legacy default stream)");
    }
    return *stream;
  }
  if (api == nullptr) return kLegacyDefaultStream;
  void* current = nullptr;
  if (api->current_work_stream(kDLCUDA, device.index(), &current) != 0) throw nb::python_error();
  return current != nullptr ? reinterpret_cast<std::uintptr_t>(current) : kLegacyDefaultStream;
}

// ---- encoders ----
// CPU: one encoder per thread (a CPU encoder holds no memory of its own and its dispatches run as
// they are recorded).
// CUDA: one encoder per (device, stream), shared by every thread of the process and never freed
// (CUDA may be torn down before static destructors run). Each has a lock held for the length of a
// dispatch, which is an enqueue. Sharing lets an encoder made ahead of a CUDA-graph capture serve
// the capturing thread and PyTorch's autograd threads alike: an encoder allocates and zeroes its
// workspaces when it is made, which a capture does not allow (the library refuses with
// Error(unsupported)), so make_encoder() makes them before.
struct CudaEncoder {
  CudaEncoder(const l2norm::Device& on, std::uintptr_t queue)
      : device(on), stream(queue), encoder(on, reinterpret_cast<void*>(queue)) {}
  l2norm::Device device;
  std::uintptr_t stream;
  std::mutex mutex;
  l2norm::CommandEncoder encoder;
};

struct CudaEncoders {
  std::mutex mutex;
  std::vector<std::unique_ptr<CudaEncoder>> encoders;
};

CudaEncoders& cuda_encoders() {
  static CudaEncoders* encoders = new CudaEncoders;  // never destroyed, see above
  return *encoders;
}

CudaEncoder& cuda_encoder(const l2norm::Device& device, std::uintptr_t stream) {
  // Each thread remembers the encoders it used, so a repeated call takes no process-wide lock.
  thread_local std::vector<CudaEncoder*> seen;
  for (CudaEncoder* entry : seen) {
    if (entry->stream == stream && entry->device == device) return *entry;
  }
  CudaEncoders& all = cuda_encoders();
  std::lock_guard lock(all.mutex);
  CudaEncoder* found = nullptr;
  for (const auto& entry : all.encoders) {
    if (entry->stream == stream && entry->device == device) found = entry.get();
  }
  if (found == nullptr) {
    all.encoders.push_back(std::make_unique<CudaEncoder>(device, stream));
    found = all.encoders.back().get();
  }
  seen.push_back(found);
  return *found;
}

l2norm::CommandEncoder& cpu_encoder() {
  thread_local l2norm::CommandEncoder encoder(l2norm::Device::cpu());
  return encoder;
}

// Runs `body(encoder)` with the GIL released on the encoder of (device, stream), then ends the
// batch. The dispatch is on the stream (CUDA) or done (CPU) when this returns.
template <class Body>
void run_on(const l2norm::Device& device, std::uintptr_t stream, Body&& body) {
  nb::gil_scoped_release released;
  if (device.is_cpu()) {
    l2norm::CommandEncoder& encoder = cpu_encoder();
    encoder.commit();
    body(encoder);
    encoder.commit();
    return;
  }
  CudaEncoder& entry = cuda_encoder(device, stream);
  std::lock_guard lock(entry.mutex);
  entry.encoder.commit();
  body(entry.encoder);
  entry.encoder.commit();
}

l2norm::L2NormOptions options_of(float eps, float scale, bool clamp) {
  return {.eps = eps,
          .scale = scale,
          .eps_mode = clamp ? l2norm::EpsMode::clamp : l2norm::EpsMode::add};
}

using Stream = std::optional<std::uintptr_t>;

void l2_norm(nb::handle input, nb::handle output, nb::handle rstd, float eps, float scale,
             bool clamp, Stream stream, bool bf16_bits) {
  constexpr const char* op = "l2_norm";
  const Arg x(input, false, bf16_bits, false, op, "input");
  const Arg y(output, true, bf16_bits, false, op, "output");
  std::optional<Arg> r;
  if (!rstd.is_none()) r.emplace(rstd, true, false, true, op, "rstd");
  const l2norm::Device device = x.view().device();
  const std::uintptr_t queue = resolve_stream(device, stream, x.api(), op);
  const l2norm::L2NormOptions options = options_of(eps, scale, clamp);
  run_on(device, queue, [&](l2norm::CommandEncoder& encoder) {
    if (r.has_value()) {
      l2norm::l2_norm(encoder, x.view(), y.view(), r->view(), options);
    } else {
      l2norm::l2_norm(encoder, x.view(), y.view(), options);
    }
  });
}

void l2_norm_backward(nb::handle dy, nb::handle y, nb::handle rstd, nb::handle dx, float eps,
                      float scale, bool clamp, Stream stream, bool bf16_bits) {
  constexpr const char* op = "l2_norm_backward";
  const Arg dy_arg(dy, false, bf16_bits, false, op, "dy");
  const Arg y_arg(y, false, bf16_bits, false, op, "y");
  const Arg rstd_arg(rstd, false, false, true, op, "rstd");
  const Arg dx_arg(dx, true, bf16_bits, false, op, "dx");
  const l2norm::Device device = dy_arg.view().device();
  const std::uintptr_t queue = resolve_stream(device, stream, dy_arg.api(), op);
  const l2norm::L2NormOptions options = options_of(eps, scale, clamp);
  run_on(device, queue, [&](l2norm::CommandEncoder& encoder) {
    l2norm::l2_norm_backward(encoder, dy_arg.view(), y_arg.view(), rstd_arg.view(), dx_arg.view(),
                             options);
  });
}

void l2_norm_backward_from_input(nb::handle dy, nb::handle x, nb::handle dx, float eps, float scale,
                                 bool clamp, Stream stream, bool bf16_bits) {
  constexpr const char* op = "l2_norm_backward_from_input";
  const Arg dy_arg(dy, false, bf16_bits, false, op, "dy");
  const Arg x_arg(x, false, bf16_bits, false, op, "x");
  const Arg dx_arg(dx, true, bf16_bits, false, op, "dx");
  const l2norm::Device device = dy_arg.view().device();
  const std::uintptr_t queue = resolve_stream(device, stream, dy_arg.api(), op);
  const l2norm::L2NormOptions options = options_of(eps, scale, clamp);
  run_on(device, queue, [&](l2norm::CommandEncoder& encoder) {
    l2norm::l2_norm_backward_from_input(encoder, dy_arg.view(), x_arg.view(), dx_arg.view(),
                                        options);
  });
}

void l2_norm_pair(nb::handle q, nb::handle q_out, nb::handle q_rstd, float q_eps, float q_scale,
                  bool q_clamp, nb::handle k, nb::handle k_out, nb::handle k_rstd, float k_eps,
                  float k_scale, bool k_clamp, Stream stream, bool bf16_bits) {
  constexpr const char* op = "l2_norm_pair";
  const Arg q_arg(q, false, bf16_bits, false, op, "first input");
  const Arg q_out_arg(q_out, true, bf16_bits, false, op, "first output");
  const Arg k_arg(k, false, bf16_bits, false, op, "second input");
  const Arg k_out_arg(k_out, true, bf16_bits, false, op, "second output");
  std::optional<Arg> q_r;
  std::optional<Arg> k_r;
  if (!q_rstd.is_none()) q_r.emplace(q_rstd, true, false, true, op, "first rstd");
  if (!k_rstd.is_none()) k_r.emplace(k_rstd, true, false, true, op, "second rstd");
  const l2norm::Device device = q_arg.view().device();
  const std::uintptr_t queue = resolve_stream(device, stream, q_arg.api(), op);
  l2norm::L2NormTarget first{q_arg.view(), q_out_arg.view()};
  if (q_r) first.rstd = q_r->view();
  first.options = options_of(q_eps, q_scale, q_clamp);
  l2norm::L2NormTarget second{k_arg.view(), k_out_arg.view()};
  if (k_r) second.rstd = k_r->view();
  second.options = options_of(k_eps, k_scale, k_clamp);
  run_on(device, queue,
         [&](l2norm::CommandEncoder& encoder) { l2norm::l2_norm_pair(encoder, first, second); });
}

void prewarm_pair(const std::string& device, const std::string& q_dtype,
                  const std::string& q_out_dtype, std::int64_t q_dim, float q_eps, float q_scale,
                  bool q_clamp, const std::string& k_dtype, const std::string& k_out_dtype,
                  std::int64_t k_dim, float k_eps, float k_scale, bool k_clamp) {
  const l2norm::Device parsed_device = l2norm::Device::parse(device);
  const l2norm::L2NormKernelShape first{l2norm::parse_dtype(q_dtype),
                                        l2norm::parse_dtype(q_out_dtype), q_dim,
                                        options_of(q_eps, q_scale, q_clamp)};
  const l2norm::L2NormKernelShape second{l2norm::parse_dtype(k_dtype),
                                         l2norm::parse_dtype(k_out_dtype), k_dim,
                                         options_of(k_eps, k_scale, k_clamp)};
  nb::gil_scoped_release released;
  l2norm::prewarm_l2_norm_pair(parsed_device, first, second);
}

// prewarm_l2_norm(device, in_dtype, out_dtype, dim, options) where this build's library has it;
// false where it has only the one-dtype form.
template <class Device>
bool prewarm_two_dtypes(const Device& device, l2norm::DType in_dtype, l2norm::DType out_dtype,
                        std::int64_t dim, const l2norm::L2NormOptions& options) {
  if constexpr (requires { l2norm::prewarm_l2_norm(device, in_dtype, out_dtype, dim, options); }) {
    l2norm::prewarm_l2_norm(device, in_dtype, out_dtype, dim, options);
    return true;
  } else {
    return false;
  }
}

void prewarm(const std::string& device, const std::string& dtype, std::int64_t dim, float eps,
             float scale, bool clamp, const std::optional<std::string>& out_dtype) {
  const l2norm::Device parsed_device = l2norm::Device::parse(device);
  const l2norm::DType parsed_dtype = l2norm::parse_dtype(dtype);
  const l2norm::DType parsed_out = out_dtype ? l2norm::parse_dtype(*out_dtype) : parsed_dtype;
  const l2norm::L2NormOptions options = options_of(eps, scale, clamp);
  nb::gil_scoped_release released;
  if (parsed_out == parsed_dtype) {
    l2norm::prewarm_l2_norm(parsed_device, parsed_dtype, dim, options);
  } else if (!prewarm_two_dtypes(parsed_device, parsed_dtype, parsed_out, dim, options)) {
    throw l2norm::Error(l2norm::ErrorCode::unsupported,
                        "prewarm_l2_norm: this build of the library has no output dtype other "
                        "than the input's (" +
                            dtype + " in, " + *out_dtype + " out)");
  }
}

void prewarm_backward(const std::string& device, const std::string& dy_dtype,
                      const std::string& y_dtype, const std::string& dx_dtype, std::int64_t dim,
                      float eps, float scale, bool clamp, bool from_input) {
  const l2norm::Device parsed_device = l2norm::Device::parse(device);
  const l2norm::DType dy = l2norm::parse_dtype(dy_dtype);
  const l2norm::DType y = l2norm::parse_dtype(y_dtype);
  const l2norm::DType dx = l2norm::parse_dtype(dx_dtype);
  nb::gil_scoped_release released;
  l2norm::prewarm_l2_norm_backward(parsed_device, dy, y, dx, dim, options_of(eps, scale, clamp),
                                   from_input);
}

void make_encoder(const std::string& device, std::uintptr_t stream) {
  const l2norm::Device parsed = l2norm::Device::parse(device);
  if (parsed.is_cpu()) return;
  if (stream == 0) {
    throw invalid("make_encoder: a CUDA stream is needed (DLPack: 1 is the legacy default stream)");
  }
  nb::gil_scoped_release released;
  cuda_encoder(parsed, stream);
}

std::vector<std::pair<std::string, std::uintptr_t>> cuda_encoder_streams() {
  CudaEncoders& all = cuda_encoders();
  std::lock_guard lock(all.mutex);
  std::vector<std::pair<std::string, std::uintptr_t>> streams;
  for (const auto& entry : all.encoders) streams.emplace_back(entry->device.name(), entry->stream);
  return streams;
}

// ---- the PyTorch eager path ----
// l2norm.torch's wrappers (l2norm, normalize) call eager_l2_norm first: for a plain eager call it
// allocates the output and normalizes into it with no Python code between, which is most of a
// decode step's call. torch.py hands over at import what the path needs from PyTorch (the tensor
// type, empty_like, its memory format, is_grad_enabled and the checks that veto the path), so this
// module does not link PyTorch.
struct EagerTorch {
  PyObject* tensor_type = nullptr;
  PyObject* empty_like = nullptr;
  PyObject* contiguous_format = nullptr;
  PyObject* grad_enabled = nullptr;
  // No-argument callables; a true result from any means the call is not a plain eager one (a
  // mode, a functorch transform or the profiler is active), so the dispatcher must see it.
  std::vector<PyObject*> vetoes;
  PyObject* out_kwnames = nullptr;  // ("dtype", "memory_format")
};
EagerTorch* eager_torch = nullptr;  // set once, never freed (as the interned names below)

void set_eager_torch(nb::handle tensor_type, nb::handle empty_like, nb::handle contiguous_format,
                     nb::handle grad_enabled, const std::vector<nb::handle>& vetoes) {
  auto* state = new EagerTorch;
  state->tensor_type = nb::handle(tensor_type).inc_ref().ptr();
  state->empty_like = nb::handle(empty_like).inc_ref().ptr();
  state->contiguous_format = nb::handle(contiguous_format).inc_ref().ptr();
  state->grad_enabled = nb::handle(grad_enabled).inc_ref().ptr();
  for (nb::handle veto : vetoes) state->vetoes.push_back(nb::handle(veto).inc_ref().ptr());
  state->out_kwnames = nb::make_tuple("dtype", "memory_format").release().ptr();
  eager_torch = state;
}

// The truth of a new reference from a Python call (consumed); a Python error propagates.
bool truth_of(PyObject* result) {
  if (result == nullptr) throw nb::python_error();
  const int truth = PyObject_IsTrue(result);
  Py_DECREF(result);
  if (truth < 0) throw nb::python_error();
  return truth != 0;
}

// y = l2_norm(x) into a new tensor (out_dtype, default x's; like x where x is contiguous, else
// contiguous) for a plain eager call: x a torch.Tensor (no subclass) not needing grad, no veto
// true, not a lazily negated view. None otherwise, and then nothing is allocated or run.
nb::object eager_l2_norm(nb::handle x, float eps, bool clamp, nb::handle out_dtype) {
  static PyObject* const requires_grad = PyUnicode_InternFromString("requires_grad");
  static PyObject* const is_neg = PyUnicode_InternFromString("is_neg");
  static PyObject* const is_contiguous = PyUnicode_InternFromString("is_contiguous");
  const EagerTorch* torch = eager_torch;
  // Without the exchange API (switched off for tests) the tensor would need detaching and its
  // stream naming, which the Python path does.
  if (torch == nullptr || reinterpret_cast<PyObject*>(Py_TYPE(x.ptr())) != torch->tensor_type ||
      exchange_api_of(Py_TYPE(x.ptr())) == nullptr) {
    return nb::none();
  }
  if (truth_of(PyObject_GetAttr(x.ptr(), requires_grad)) &&
      truth_of(PyObject_CallNoArgs(torch->grad_enabled))) {
    return nb::none();
  }
  for (PyObject* veto : torch->vetoes) {
    if (truth_of(PyObject_CallNoArgs(veto))) return nb::none();
  }
  if (truth_of(PyObject_CallMethodNoArgs(x.ptr(), is_neg))) return nb::none();
  PyObject* y = nullptr;
  if (out_dtype.is_none() && truth_of(PyObject_CallMethodNoArgs(x.ptr(), is_contiguous))) {
    PyObject* arguments[] = {x.ptr()};
    y = PyObject_Vectorcall(torch->empty_like, arguments, 1, nullptr);
  } else {
    PyObject* arguments[] = {x.ptr(), out_dtype.ptr(), torch->contiguous_format};
    y = PyObject_Vectorcall(torch->empty_like, arguments, 1, torch->out_kwnames);
  }
  if (y == nullptr) throw nb::python_error();
  nb::object output = nb::steal(y);
  l2_norm(x, output, nb::none(), eps, 1.0f, clamp, std::nullopt, false);
  return output;
}

// ---- the NumPy fast path ----
// normalize() on a plain NumPy array into a new one (no out, out_dtype, rstd or stream) is the
// call of a search engine normalizing each query: a few microseconds of Python around a kernel of
// less than one. l2norm's Python layer hands over at import what the path needs from NumPy (the
// array type, numpy.empty and the native float32 and float16 dtypes), so the call allocates and
// normalizes with no Python code between.
struct EagerNumpy {
  PyObject* array_type = nullptr;
  PyObject* empty = nullptr;
  std::vector<PyObject*> dtypes;  // served by the path; any other dtype object takes Python's
};
EagerNumpy* eager_numpy = nullptr;  // set once, never freed

void set_eager_numpy(nb::handle array_type, nb::handle empty,
                     const std::vector<nb::handle>& dtypes) {
  auto* state = new EagerNumpy;
  state->array_type = nb::handle(array_type).inc_ref().ptr();
  state->empty = nb::handle(empty).inc_ref().ptr();
  for (nb::handle dtype : dtypes) state->dtypes.push_back(nb::handle(dtype).inc_ref().ptr());
  eager_numpy = state;
}

// Whether `array` is an exact numpy.ndarray whose dtype object is one the path serves (native
// float32 or float16); its dtype in `dtype`.
bool served_by_eager_numpy(const EagerNumpy& numpy, nb::handle array, nb::object& dtype) {
  static PyObject* const dtype_name = PyUnicode_InternFromString("dtype");
  if (reinterpret_cast<PyObject*>(Py_TYPE(array.ptr())) != numpy.array_type) return false;
  dtype = nb::steal(PyObject_GetAttr(array.ptr(), dtype_name));
  if (!dtype.is_valid()) throw nb::python_error();
  for (PyObject* candidate : numpy.dtypes) {
    if (dtype.ptr() == candidate) return true;
  }
  return false;
}

// y = l2_norm(x) * scale into `out`, or into a new C-contiguous array of x's shape and dtype when
// `out` is None, for x (and out) exact numpy.ndarrays of dtypes the path serves. None otherwise,
// and then nothing is allocated or run.
nb::object eager_numpy_l2_norm(nb::handle x, float eps, float scale, bool clamp, nb::handle out) {
  static PyObject* const shape_name = PyUnicode_InternFromString("shape");
  const EagerNumpy* numpy = eager_numpy;
  nb::object dtype;
  nb::object out_dtype;
  if (numpy == nullptr || !served_by_eager_numpy(*numpy, x, dtype) ||
      (!out.is_none() && !served_by_eager_numpy(*numpy, out, out_dtype))) {
    return nb::none();
  }
  if (!out.is_none()) {
    l2_norm(x, out, nb::none(), eps, scale, clamp, std::nullopt, false);
    return nb::borrow(out);
  }
  const nb::object shape = nb::steal(PyObject_GetAttr(x.ptr(), shape_name));
  if (!shape.is_valid()) throw nb::python_error();
  PyObject* arguments[] = {shape.ptr(), dtype.ptr()};
  PyObject* y = PyObject_Vectorcall(numpy->empty, arguments, 2, nullptr);
  if (y == nullptr) throw nb::python_error();
  nb::object output = nb::steal(y);
  l2_norm(x, output, nb::none(), eps, scale, clamp, std::nullopt, false);
  return output;
}

bool has_exchange_api(nb::handle object) {
  return exchange_api_of(Py_TYPE(object.ptr())) != nullptr;
}

void use_exchange_api(bool enabled) {
  exchange_api_enabled = enabled;
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

constexpr const char* kStreamDoc =
    " `stream`: the cudaStream_t to run on as an integer (DLPack conventions: 1 the legacy default "
    "stream, 2 the per-thread one); None takes the producer's current stream where its type has "
    "the DLPack C exchange API (PyTorch), else the legacy default stream; ignored on the CPU. "
    "`bf16_bits`: uint16 arrays hold bfloat16 bit patterns. Releases the GIL while it works.";

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
  m.def("l2_norm", &l2_norm, nb::arg("input"), nb::arg("output"), nb::arg("rstd").none(),
        nb::arg("eps"), nb::arg("scale"), nb::arg("clamp"), nb::arg("stream").none(),
        nb::arg("bf16_bits"),
        (std::string("Normalizes the rows of `input` into `output` (same shape; f32, f16 or bf16 "
                     "each; any DLPack array on the CPU or a CUDA device, no copy) and, unless "
                     "`rstd` is None, writes each row's f32 reciprocal norm into `rstd` (any array "
                     "of one value per row in row-major order).") +
         kStreamDoc)
            .c_str());
  m.def("l2_norm_backward", &l2_norm_backward, nb::arg("dy"), nb::arg("y"), nb::arg("rstd"),
        nb::arg("dx"), nb::arg("eps"), nb::arg("scale"), nb::arg("clamp"), nb::arg("stream").none(),
        nb::arg("bf16_bits"),
        (std::string("Writes into `dx` the gradient of l2_norm with respect to its input, from "
                     "`dy` (the gradient of its output), the forward's output `y` (computed with "
                     "scale 1) and its f32 `rstd`; `dx` may be `dy` (in place).") +
         kStreamDoc)
            .c_str());
  m.def("l2_norm_backward_from_input", &l2_norm_backward_from_input, nb::arg("dy"), nb::arg("x"),
        nb::arg("dx"), nb::arg("eps"), nb::arg("scale"), nb::arg("clamp"), nb::arg("stream").none(),
        nb::arg("bf16_bits"),
        (std::string("Writes into `dx` the gradient of l2_norm with respect to its input `x`, "
                     "from `dy` and `x` alone (the norm is recomputed); `dx` may be `dy`.") +
         kStreamDoc)
            .c_str());
  m.def("l2_norm_pair", &l2_norm_pair, nb::arg("q"), nb::arg("q_out"), nb::arg("q_rstd").none(),
        nb::arg("q_eps"), nb::arg("q_scale"), nb::arg("q_clamp"), nb::arg("k"), nb::arg("k_out"),
        nb::arg("k_rstd").none(), nb::arg("k_eps"), nb::arg("k_scale"), nb::arg("k_clamp"),
        nb::arg("stream").none(), nb::arg("bf16_bits"),
        (std::string("Normalizes two independent arrays (q and k) in one dispatch: one kernel "
                     "launch on CUDA. Each is bitwise what l2_norm writes with its own options; "
                     "neither's outputs may share memory with the other's arrays.") +
         kStreamDoc)
            .c_str());
  m.def("prewarm_pair", &prewarm_pair, nb::arg("device"), nb::arg("q_dtype"),
        nb::arg("q_out_dtype"), nb::arg("q_dim"), nb::arg("q_eps"), nb::arg("q_scale"),
        nb::arg("q_clamp"), nb::arg("k_dtype"), nb::arg("k_out_dtype"), nb::arg("k_dim"),
        nb::arg("k_eps"), nb::arg("k_scale"), nb::arg("k_clamp"),
        "Compiles every kernel l2_norm_pair may pick for these shapes on `device` (before a CUDA "
        "graph capture); a no-op on the CPU.");
  m.def("prewarm", &prewarm, nb::arg("device"), nb::arg("dtype"), nb::arg("dim"), nb::arg("eps"),
        nb::arg("scale"), nb::arg("clamp"), nb::arg("out_dtype").none() = nb::none(),
        "Compiles every kernel l2_norm (with and without rstd) may pick on `device` for rows of "
        "`dim` `dtype` elements written as `out_dtype` (default: `dtype`), so later calls need "
        "no compilation (and may be captured into a CUDA graph). No-op on the CPU.");
  m.def("prewarm_backward", &prewarm_backward, nb::arg("device"), nb::arg("dy_dtype"),
        nb::arg("y_dtype"), nb::arg("dx_dtype"), nb::arg("dim"), nb::arg("eps"), nb::arg("scale"),
        nb::arg("clamp"), nb::arg("from_input"),
        "Compiles every kernel l2_norm_backward (from_input False; y_dtype is y's) or "
        "l2_norm_backward_from_input (True; y_dtype is x's) may pick on `device` for rows of "
        "`dim` elements of these dtypes. No-op on the CPU.");
  m.def("make_encoder", &make_encoder, nb::arg("device"), nb::arg("stream"),
        "Makes the encoder of (`device`, `stream`) now, outside any CUDA-graph capture: an encoder "
        "allocates and zeroes its workspaces when it is made, which a capture does not allow. "
        "Every thread then uses it for that stream. No-op for 'cpu'.");
  m.def("cuda_encoder_streams", &cuda_encoder_streams,
        "The (device, stream) pairs that have a CUDA encoder in this process.");
  m.def("_set_eager_torch", &set_eager_torch, nb::arg("tensor_type"), nb::arg("empty_like"),
        nb::arg("contiguous_format"), nb::arg("grad_enabled"), nb::arg("vetoes"),
        "l2norm.torch: what _eager_l2_norm needs from PyTorch (set once at import).");
  m.def("_eager_l2_norm", &eager_l2_norm, nb::arg("x"), nb::arg("eps"), nb::arg("clamp"),
        nb::arg("out_dtype").none(),
        "l2norm.torch: l2_norm of a plain eager call into a new tensor (scale 1, no rstd, the "
        "current stream), or None (nothing done) where the call must go through the dispatcher.");
  m.def("_set_eager_numpy", &set_eager_numpy, nb::arg("array_type"), nb::arg("empty"),
        nb::arg("dtypes"),
        "l2norm: what _eager_numpy_l2_norm needs from NumPy (set when l2norm first sees NumPy).");
  m.def("_eager_numpy_l2_norm", &eager_numpy_l2_norm, nb::arg("x"), nb::arg("eps"),
        nb::arg("scale"), nb::arg("clamp"), nb::arg("out").none() = nb::none(),
        "l2norm.normalize: l2_norm(x) * scale into `out` or a new C-contiguous array, for plain "
        "NumPy arrays of served dtypes; None (nothing done) where the general path must run.");
  m.def("has_exchange_api", &has_exchange_api, nb::arg("array"),
        "True when `array`'s type offers the DLPack C exchange API (`__dlpack_c_exchange_api__`, "
        "DLPack 1.x), which the ops use to view it and find its stream with no Python calls.");
  m.def("_use_exchange_api", &use_exchange_api, nb::arg("enabled"),
        "Testing: False makes every array go through nanobind's DLPack import, as for producers "
        "without the DLPack C exchange API; True (the default) restores it.");
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

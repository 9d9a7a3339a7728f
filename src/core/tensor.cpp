#include "l2norm/tensor.hpp"

#include <cstring>
#include <string>
#include <utility>

#include "core/backend.hpp"
#include "l2norm/error.hpp"

namespace l2norm {
namespace {

void require_rank(std::size_t rank) {
  if (rank < 1 || rank > std::size_t(kMaxRank)) {
    throw Error(ErrorCode::invalid_argument, "TensorView: rank " + std::to_string(rank) +
                                                 " is not supported (1.." +
                                                 std::to_string(kMaxRank) + ")");
  }
}

std::int64_t checked_product(std::span<const std::int64_t> sizes, const char* what) {
  std::int64_t product = 1;
  for (const std::int64_t size : sizes) {
    if (__builtin_mul_overflow(product, size, &product)) {
      throw Error(ErrorCode::invalid_argument,
                  std::string("TensorView: ") + what + " overflows a 64-bit element count");
    }
  }
  return product;
}

}  // namespace

TensorView::TensorView(void* data, DType dtype, Device device, std::span<const std::int64_t> shape)
    : data_(data), dtype_(dtype), device_(device) {
  require_rank(shape.size());
  rank_ = int(shape.size());
  std::int64_t stride = 1;
  for (int i = rank_ - 1; i >= 0; --i) {
    const std::int64_t size = shape[std::size_t(i)];
    if (size < 0) {
      throw Error(ErrorCode::invalid_argument, "TensorView: size " + std::to_string(size) +
                                                   " of dim " + std::to_string(i) + " is negative");
    }
    shape_[std::size_t(i)] = size;
    strides_[std::size_t(i)] = stride;
    if (__builtin_mul_overflow(stride, size, &stride)) {
      throw Error(ErrorCode::invalid_argument,
                  "TensorView: shape overflows a 64-bit element count");
    }
  }
}

TensorView::TensorView(void* data, DType dtype, Device device, std::span<const std::int64_t> shape,
                       std::span<const std::int64_t> strides)
    : TensorView(data, dtype, device, shape) {
  if (strides.size() != shape.size()) {
    throw Error(ErrorCode::invalid_argument, "TensorView: " + std::to_string(strides.size()) +
                                                 " strides given for rank " +
                                                 std::to_string(shape.size()));
  }
  for (int i = 0; i < rank_; ++i) strides_[std::size_t(i)] = strides[std::size_t(i)];
}

std::int64_t TensorView::numel() const {
  return checked_product(shape(), "shape");
}

std::int64_t TensorView::rows() const {
  return checked_product(shape().first(std::size_t(rank_ - 1)), "leading dims");
}

bool TensorView::is_contiguous() const noexcept {
  std::int64_t expected = 1;
  for (int i = rank_ - 1; i >= 0; --i) {
    if (shape_[std::size_t(i)] != 1 && strides_[std::size_t(i)] != expected) return false;
    expected *= shape_[std::size_t(i)];
  }
  return true;
}

Buffer::Buffer(Device device, DType dtype, std::int64_t count)
    : device_(device), dtype_(dtype), count_(count) {
  if (count < 0) {
    throw Error(ErrorCode::invalid_argument,
                "Buffer: element count " + std::to_string(count) + " is negative");
  }
  std::size_t byte_count = 0;
  if (__builtin_mul_overflow(std::size_t(count), dtype_size(dtype), &byte_count)) {
    throw Error(ErrorCode::invalid_argument,
                "Buffer: " + std::to_string(count) + " elements overflow the address space");
  }
  require_device(device);
  data_ = device.is_cpu() ? detail::cpu::allocate(byte_count)
                          : detail::cuda::allocate(device.index(), byte_count);
}

Buffer::~Buffer() {
  if (data_ == nullptr) return;
  if (device_.is_cpu()) {
    detail::cpu::release(data_);
  } else {
    detail::cuda::release(device_.index(), data_);
  }
}

Buffer::Buffer(Buffer&& other) noexcept
    : device_(other.device_),
      dtype_(other.dtype_),
      count_(std::exchange(other.count_, 0)),
      data_(std::exchange(other.data_, nullptr)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Buffer released(std::move(*this));
    device_ = other.device_;
    dtype_ = other.dtype_;
    count_ = std::exchange(other.count_, 0);
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

namespace {
// A copy of `bytes` fits the buffer, and a non-empty copy names host memory.
void require_copy_fits(const Buffer& buffer, const void* host, const char* host_role,
                       std::size_t bytes, const char* op) {
  if (bytes > buffer.bytes()) {
    throw Error(ErrorCode::invalid_argument,
                std::string("Buffer::") + op + ": " + std::to_string(bytes) +
                    " bytes requested, buffer holds " + std::to_string(buffer.bytes()));
  }
  if (bytes > 0 && host == nullptr) {
    throw Error(ErrorCode::invalid_argument, std::string("Buffer::") + op + ": " + host_role +
                                                 " is null (" + std::to_string(bytes) +
                                                 " bytes requested)");
  }
}
}  // namespace

void Buffer::copy_from_host(const void* source, std::size_t bytes) {
  require_copy_fits(*this, source, "source", bytes, "copy_from_host");
  if (bytes == 0) return;
  if (device_.is_cpu()) {
    std::memcpy(data_, source, bytes);
  } else {
    detail::cuda::copy_to_device(device_.index(), data_, source, bytes);
  }
}

void Buffer::copy_to_host(void* destination, std::size_t bytes) const {
  require_copy_fits(*this, destination, "destination", bytes, "copy_to_host");
  if (bytes == 0) return;
  if (device_.is_cpu()) {
    std::memcpy(destination, data_, bytes);
  } else {
    detail::cuda::copy_to_host(device_.index(), destination, data_, bytes);
  }
}

TensorView Buffer::view() const {
  return TensorView(data_, dtype_, device_, {count_});
}

TensorView Buffer::view(std::initializer_list<std::int64_t> shape) const {
  TensorView reshaped(data_, dtype_, device_, shape);
  if (reshaped.numel() != count_) {
    throw Error(ErrorCode::invalid_argument,
                "Buffer::view: shape has " + std::to_string(reshaped.numel()) +
                    " elements, buffer holds " + std::to_string(count_));
  }
  return reshaped;
}

}  // namespace l2norm

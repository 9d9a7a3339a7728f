// Memory the ops read and write. TensorView is a non-owning, strided view (rank 1..4, strides in
// elements); Buffer owns device-tagged memory of one dtype.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

#include "l2norm/device.hpp"
#include "l2norm/dtype.hpp"

namespace l2norm {

inline constexpr int kMaxRank = 4;

class TensorView {
 public:
  // Contiguous (row-major) view. Throws Error(invalid_argument) for rank outside 1..4 or a
  // negative size.
  TensorView(void* data, DType dtype, Device device, std::span<const std::int64_t> shape);
  TensorView(void* data, DType dtype, Device device, std::initializer_list<std::int64_t> shape)
      : TensorView(data, dtype, device,
                   std::span<const std::int64_t>(shape.begin(), shape.size())) {}
  // Strided view; strides are in elements, one per dimension.
  TensorView(void* data, DType dtype, Device device, std::span<const std::int64_t> shape,
             std::span<const std::int64_t> strides);
  TensorView(void* data, DType dtype, Device device, std::initializer_list<std::int64_t> shape,
             std::initializer_list<std::int64_t> strides)
      : TensorView(data, dtype, device, std::span<const std::int64_t>(shape.begin(), shape.size()),
                   std::span<const std::int64_t>(strides.begin(), strides.size())) {}

  void* data() const noexcept { return data_; }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return device_; }
  int rank() const noexcept { return rank_; }
  std::span<const std::int64_t> shape() const noexcept {
    return {shape_.data(), std::size_t(rank_)};
  }
  std::span<const std::int64_t> strides() const noexcept {
    return {strides_.data(), std::size_t(rank_)};
  }
  std::int64_t size(int dim) const noexcept { return shape_[std::size_t(dim)]; }
  std::int64_t stride(int dim) const noexcept { return strides_[std::size_t(dim)]; }
  // Product of all sizes. Throws Error(invalid_argument) if it overflows int64.
  std::int64_t numel() const;
  // Product of the leading sizes (1 for rank 1) and the last size.
  std::int64_t rows() const;
  std::int64_t dim() const noexcept { return shape_[std::size_t(rank_ - 1)]; }
  bool is_contiguous() const noexcept;

 private:
  void* data_;
  DType dtype_;
  Device device_;
  int rank_ = 0;
  std::array<std::int64_t, kMaxRank> shape_{};
  std::array<std::int64_t, kMaxRank> strides_{};
};

class Buffer {
 public:
  // Allocates `count` elements on `device` (64-byte aligned on the CPU, cudaMalloc on CUDA).
  // Contents are uninitialized. Throws Error(out_of_memory) or Error(unsupported).
  Buffer(Device device, DType dtype, std::int64_t count);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const noexcept { return data_; }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return device_; }
  std::int64_t count() const noexcept { return count_; }
  std::size_t bytes() const noexcept { return std::size_t(count_) * dtype_size(dtype_); }

  // Synchronous copies between this buffer and host memory; `bytes` must not exceed bytes(), and
  // the host pointer must not be null unless `bytes` is 0. Throws Error(invalid_argument).
  void copy_from_host(const void* source, std::size_t bytes);
  void copy_to_host(void* destination, std::size_t bytes) const;

  TensorView view() const;                                           // 1-D, all elements
  TensorView view(std::initializer_list<std::int64_t> shape) const;  // contiguous reshape

 private:
  Device device_;
  DType dtype_;
  std::int64_t count_;
  void* data_ = nullptr;
};

}  // namespace l2norm

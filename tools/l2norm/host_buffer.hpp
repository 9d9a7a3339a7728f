// A growable block of host memory aligned to 64 bytes (a cache line, and wide enough for any
// vector load the CPU backend issues), with no per-element initialization cost.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace l2norm::io {

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(std::size_t bytes) { reserve(bytes); }

  // Makes room for at least `bytes`; the contents are not kept when it grows.
  void reserve(std::size_t bytes) {
    if (bytes <= capacity_) return;
    data_.reset(static_cast<std::byte*>(::operator new[](bytes, kAlignment)));
    capacity_ = bytes;
  }
  std::byte* data() const noexcept { return data_.get(); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  static constexpr std::align_val_t kAlignment{64};
  struct AlignedDelete {
    void operator()(std::byte* bytes) const noexcept { ::operator delete[](bytes, kAlignment); }
  };
  std::unique_ptr<std::byte[], AlignedDelete> data_;
  std::size_t capacity_ = 0;
};

}  // namespace l2norm::io

// The contract between the op layer and the backends. The op layer validates everything and
// describes the work as an L2NormCall; backends only pick kernels and run them, never re-validate.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "l2norm/device.hpp"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"

namespace l2norm::detail {

inline constexpr int kMaxOuterRank = kMaxRank - 1;

// Where the rows are. Row r (0 <= r < rows) starts at element offset
//   sum_i index_i * stride_i   where (index_0, ..., index_{outer_rank-1}) = r unraveled row-major
// over outer_sizes. The op layer merges leading dims that are contiguous with each other, so a
// packed tensor always arrives as outer_rank == 1 with stride == dim (or the real row stride).
struct RowLayout {
  int outer_rank = 1;  // 1..3
  std::array<std::int64_t, kMaxOuterRank> outer_sizes{};
  std::array<std::int64_t, kMaxOuterRank> input_strides{};
  std::array<std::int64_t, kMaxOuterRank> output_strides{};
};

struct L2NormCall {
  const void* input;
  void* output;  // == input when in place
  DType dtype;
  std::int64_t rows;  // >= 1
  std::int64_t dim;   // >= 1
  RowLayout layout;
  float eps;    // finite, >= 0
  float scale;  // finite
  bool scaled;  // scale != 1: apply the second, separately rounded multiply
  EpsMode eps_mode;
  // Largest of 16, 8, 4, 2 bytes (never below the element size) that divides both base
  // addresses, every row stride in bytes and the row length in bytes. 16 selects the aligned
  // (16-byte vector) variants; anything less selects the unaligned ones.
  int vector_bytes;
};

// Offset in elements of row `row` under (sizes, strides); shared by both backends' host code.
inline std::int64_t row_offset(const RowLayout& layout,
                               const std::array<std::int64_t, kMaxOuterRank>& strides,
                               std::int64_t row) {
  std::int64_t offset = 0;
  for (int i = layout.outer_rank - 1; i >= 0; --i) {
    const std::int64_t size = layout.outer_sizes[std::size_t(i)];
    offset += (row % size) * strides[std::size_t(i)];
    row /= size;
  }
  return offset;
}

// One device's work queue, behind CommandEncoder.
class EncoderImpl {
 public:
  virtual ~EncoderImpl() = default;
  // Runs (CPU) or enqueues (CUDA) the call; returns the name of the variant it picked.
  virtual std::string l2_norm(const L2NormCall& call) = 0;
  // Blocks until every call so far has finished. (Ending a batch needs nothing from a backend:
  // each call is run or enqueued as it is recorded.)
  virtual void wait() = 0;
  virtual void* cuda_stream() const noexcept { return nullptr; }
};

namespace cpu {
std::unique_ptr<EncoderImpl> make_encoder();
void* allocate(std::size_t bytes);  // 64-byte aligned; throws Error(out_of_memory)
void release(void* pointer) noexcept;
}  // namespace cpu

// Implemented in src/cuda/ when the CUDA backend is built, else by src/cuda/unavailable.cpp.
namespace cuda {
bool available() noexcept;
std::string unavailable_reason();
int device_count() noexcept;
std::vector<DeviceInfo> devices();
std::unique_ptr<EncoderImpl> make_encoder(int device_index, void* stream);
void* allocate(int device_index, std::size_t bytes);
void release(int device_index, void* pointer) noexcept;
void copy_to_device(int device_index, void* destination, const void* source, std::size_t bytes);
void copy_to_host(int device_index, void* destination, const void* source, std::size_t bytes);
void prewarm_l2_norm(int device_index, DType dtype, std::int64_t dim, const L2NormOptions& options);
}  // namespace cuda

}  // namespace l2norm::detail

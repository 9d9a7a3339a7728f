// Where the rows of a validated view pair are: the description every op's backends walk.
#pragma once

#include <array>
#include <cstdint>

#include "l2norm/tensor.hpp"

namespace l2norm::detail {

inline constexpr int kMaxOuterRank = kMaxRank - 1;

// Row r (0 <= r < rows) starts at element offset
//   sum_i index_i * stride_i   where (index_0, ..., index_{outer_rank-1}) = r unraveled row-major
// over outer_sizes. Leading dims that are contiguous with each other in both views are merged, so
// a packed tensor always arrives as outer_rank == 1 with stride == dim (or the real row stride).
struct RowLayout {
  int outer_rank = 1;  // 1..3
  std::array<std::int64_t, kMaxOuterRank> outer_sizes{};
  std::array<std::int64_t, kMaxOuterRank> input_strides{};
  std::array<std::int64_t, kMaxOuterRank> output_strides{};
};

// The rows of several views of one shape that an op walks together (its inputs and outputs, in an
// order the op defines): row r of view v starts at sum_i index_i * strides[v][i], as above.
template <int Views>
struct RowsLayout {
  int outer_rank = 1;  // 1..3
  std::array<std::int64_t, kMaxOuterRank> outer_sizes{};
  std::array<std::array<std::int64_t, kMaxOuterRank>, Views> strides{};
};

// Offset in elements of row `row` under (sizes, strides); shared by every backend's host code.
template <typename Layout>
std::int64_t row_offset(const Layout& layout,
                        const std::array<std::int64_t, kMaxOuterRank>& strides, std::int64_t row) {
  std::int64_t offset = 0;
  for (int i = layout.outer_rank - 1; i >= 0; --i) {
    const std::int64_t size = layout.outer_sizes[std::size_t(i)];
    offset += (row % size) * strides[std::size_t(i)];
    row /= size;
  }
  return offset;
}

}  // namespace l2norm::detail

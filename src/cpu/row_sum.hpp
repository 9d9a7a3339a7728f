// The CPU kernels' one summation order over a row (docs/DESIGN.md "Semantics", step 1).
//
// A row of `dim` elements is cut into blocks of 128 elements, the last one padded with zeros. Each
// block's terms, 8 vectors of 16 lanes in chunk order (a 16-bit chunk gives its even elements'
// vector, then its odd elements'), are summed as a pairwise tree; the block sums are combined
// along a pairwise tree over the block index (a binary-counter cascade), and the 16 lanes of the
// result by a final pairwise fold. Zero padding adds zero terms, which change no sum, so the order
// depends on dim alone: not on alignment, thread count or the instruction set. The error grows
// with log2(dim), not with dim.
//
// fixed_order_sum holds the order over blocks and lanes and takes each block's sum from a
// callable, so a sum of squares and a dot product of two rows share it; a block function sums its
// chunks' terms in chunk order with pairwise_sum, as block_sum_of_squares does.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/chunk.hpp"

namespace l2norm::detail::cpu {

constexpr std::int64_t kVectorsPerBlock = 8;
constexpr std::int64_t kBlockElements = kLanes * kVectorsPerBlock;

inline F32x16 pairwise_sum(const F32x16 (&terms)[kVectorsPerBlock]) {
  return ((terms[0] + terms[1]) + (terms[2] + terms[3])) +
         ((terms[4] + terms[5]) + (terms[6] + terms[7]));
}

// Lane i plus lane i + 8, then i + 4, i + 2, i + 1: in registers, no trip through memory.
inline float fold_lanes(const F32x16& sum) {
  using F32x8 = float __attribute__((vector_size(32)));
  using F32x4 = float __attribute__((vector_size(16)));
  using F32x2 = float __attribute__((vector_size(8)));
  const F32x8 eight = __builtin_shufflevector(sum, sum, 0, 1, 2, 3, 4, 5, 6, 7) +
                      __builtin_shufflevector(sum, sum, 8, 9, 10, 11, 12, 13, 14, 15);
  const F32x4 four = __builtin_shufflevector(eight, eight, 0, 1, 2, 3) +
                     __builtin_shufflevector(eight, eight, 4, 5, 6, 7);
  const F32x2 two =
      __builtin_shufflevector(four, four, 0, 1) + __builtin_shufflevector(four, four, 2, 3);
  return two[0] + two[1];
}

// Adds block sums along a binary tree over the block index: block i joins the partial sums of the
// complete subtrees before it, like carries in a binary counter. Error grows with log2(blocks).
class PairwiseAccumulator {
 public:
  void add(const F32x16& block_sum) {
    F32x16 sum = block_sum;
    int level = 0;
    for (std::uint64_t carries = blocks_; (carries & 1u) != 0; carries >>= 1, ++level) {
      sum = subtree_sums_[level] + sum;
    }
    subtree_sums_[level] = sum;
    ++blocks_;
  }

  // Folds the pending subtrees, smallest first, then the 16 lanes pairwise.
  float total() const {
    F32x16 sum{};
    bool first = true;
    int level = 0;
    for (std::uint64_t pending = blocks_; pending != 0; pending >>= 1, ++level) {
      if ((pending & 1u) == 0) continue;
      sum = first ? subtree_sums_[level] : subtree_sums_[level] + sum;
      first = false;
    }
    return fold_lanes(sum);
  }

 private:
  F32x16 subtree_sums_[64];
  std::uint64_t blocks_ = 0;
};

// Sum over a row of `dim` elements of per-element f32 terms, in the order above.
// block_sum(first, count) returns the 16 lanes of the pairwise sum of the terms of the `count`
// (1 to kBlockElements) elements from element `first`, zero terms standing in for the rest of
// the block.
template <class BlockSum>
inline float fixed_order_sum(std::int64_t dim, const BlockSum& block_sum) {
  PairwiseAccumulator accumulator;
  const std::int64_t full_blocks = dim / kBlockElements;
  for (std::int64_t block = 0; block < full_blocks; ++block) {
    accumulator.add(block_sum(block * kBlockElements, kBlockElements));
  }
  const std::int64_t remainder = dim - full_blocks * kBlockElements;
  if (remainder != 0) accumulator.add(block_sum(full_blocks * kBlockElements, remainder));
  return accumulator.total();
}

// The block of `count` (1 to kBlockElements) elements at x, zero-padded: its chunks' vectors,
// squared, in chunk order, summed pairwise.
template <DType T>
inline F32x16 block_sum_of_squares(const ElementOf<T>* x, std::int64_t count) {
  constexpr std::int64_t kChunksPerBlock = kBlockElements / kChunkElements<T>;
  F32x16 squares[kVectorsPerBlock];
  for (std::int64_t chunk = 0; chunk < kChunksPerBlock; ++chunk) {
    const std::int64_t first = chunk * kChunkElements<T>;
    const std::int64_t available = std::clamp<std::int64_t>(count - first, 0, kChunkElements<T>);
    RawOf<T> raw{};
    if (available == kChunkElements<T>) {
      raw = load<T>(x + first);
    } else if (available > 0) {
      raw = load_partial<T>(x + first, available);
    }
    const Widened<T> values = widen<T>(raw);
    for (int k = 0; k < kVectorsPerChunk<T>; ++k) {
      squares[chunk * kVectorsPerChunk<T> + k] = values.vectors[k] * values.vectors[k];
    }
  }
  return pairwise_sum(squares);
}

// sum(x_i * x_i) over the row, each square rounded to f32.
template <DType T>
inline float sum_of_squares(const ElementOf<T>* x, std::int64_t dim) {
  return fixed_order_sum(dim, [x](std::int64_t first, std::int64_t count) {
    return block_sum_of_squares<T>(x + first, count);
  });
}

}  // namespace l2norm::detail::cpu

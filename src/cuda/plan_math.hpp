// What the CUDA planners (l2_norm_plan.cpp, l2_norm_backward_plan.cpp, l2_norm_pair_plan.cpp)
// share: integer helpers, the kernels' dtype codes, the common part of variant names, and the
// layout and split arithmetic that reads only the fields every variant and policy family has.
// Pure functions of their arguments, no CUDA calls.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "cuda/device_caps.hpp"
#include "cuda/kernels/l2_norm_policy.cuh"
#include "l2norm/dtype.hpp"

namespace l2norm::detail::cuda::plan_math {

// The L2NORM_DTYPE_* code the kernels take for `dtype`.
inline int dtype_code(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return L2NORM_DTYPE_F32;
    case DType::f16:
      return L2NORM_DTYPE_F16;
    case DType::bf16:
      return L2NORM_DTYPE_BF16;
  }
  return L2NORM_DTYPE_F32;
}

// Appends the part of a variant's name that every kernel has:
// ",v<vector>,<threads_per_row>x<items>," then "clamp" or "add", and ",scaled" where scaled.
inline void append_layout_name(std::string& text, int vector, int threads_per_row, int items,
                               bool clamp, bool scaled) {
  text += ",v";
  text += std::to_string(vector);
  text += ',';
  text += std::to_string(threads_per_row);
  text += 'x';
  text += std::to_string(items);
  text += clamp ? ",clamp" : ",add";
  if (scaled) text += ",scaled";
}

// The least power of two that is at least `value` (1 for values up to 1).
inline int next_power_of_two(std::int64_t value) {
  int power = 1;
  while (power < value) power *= 2;
  return power;
}

// a / b rounded up, for a >= 0 and b > 0.
inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

// Blocks that may be resident on the device at once, each with a split workspace slot.
inline std::int64_t workspace_slots(const DeviceCaps& caps) {
  return std::int64_t{caps.multiprocessors} * std::max(caps.max_blocks_per_multiprocessor, 1);
}

// Blocks one cooperative split launch may have: the policy's per multiprocessor, within the
// workspace's slots.
template <typename Policy>
std::int64_t split_grid_limit(const DeviceCaps& caps, const Policy& policy) {
  return std::min<std::int64_t>(
      std::int64_t{policy.split_blocks_per_multiprocessor} * caps.multiprocessors,
      workspace_slots(caps));
}

// Tiles of `tile_bytes` one on-chip split block holds: one in registers, the rest in the shared
// memory its static arrays leave free.
template <typename Policy>
std::int64_t tiles_on_chip(std::size_t tile_bytes, const DeviceCaps& caps, const Policy& policy) {
  const auto reserved = static_cast<std::size_t>(policy.split_static_shared_bytes);
  const std::size_t free_shared = caps.shared_memory_per_block_optin > reserved
                                      ? caps.shared_memory_per_block_optin - reserved
                                      : 0;
  const auto staged = std::min<std::int64_t>(static_cast<std::int64_t>(free_shared / tile_bytes),
                                             policy.max_tiles_per_block - 1);
  return 1 + staged;
}

// Whether a split row of `tiles` tiles, `per_block` of them to a block, runs on chip: its blocks
// fit one cooperative launch and its tiles' partial sums the workspace.
template <typename Policy>
bool split_fits_on_chip(std::int64_t tiles, std::int64_t per_block, const DeviceCaps& caps,
                        const Policy& policy) {
  return tiles <= split_grid_limit(caps, policy) * per_block && tiles <= workspace_slots(caps);
}

// The rows kernel's layout of a row of `dim` elements in vectors of `vector_elements`: a power of
// two of threads per row, rows_values_per_thread values each, and at least the policy's smallest
// block.
template <typename Variant, typename Policy>
void set_rows_layout(Variant& variant, std::int64_t dim, int vector_elements,
                     const Policy& layout) {
  variant.items = layout.rows_values_per_thread / vector_elements;
  variant.threads_per_row = next_power_of_two(ceil_div(dim, layout.rows_values_per_thread));
  variant.block_threads = std::max(variant.threads_per_row, layout.rows_min_block_threads);
}

// The split kernels' tile layout: one block of tile_block_threads threads per tile, each with
// tile_values_per_thread values in vectors of `vector_elements`.
template <typename Variant, typename Policy>
void set_tile_layout(Variant& variant, int vector_elements, const Policy& layout) {
  variant.items = layout.tile_values_per_thread / vector_elements;
  variant.threads_per_row = layout.tile_block_threads;
  variant.block_threads = layout.tile_block_threads;
}

// The layout for batches too small to fill the device, where the dependent chain of one row is
// the time: one vector per thread and twice the threads per row. Only where it sums a row in the
// same order as the throughput layout: that one keeps two vectors per thread, so its in-thread
// step adds vectors `threads_per_row` apart, which is exactly the first butterfly step of the
// doubled group, and the doubled group still fits a warp (a pure butterfly).
template <typename Variant, typename Policy>
std::optional<Variant> latency_variant(const Variant& throughput, const Policy& policy) {
  if (throughput.kind != decltype(throughput.kind)::rows || throughput.items != 2 ||
      throughput.threads_per_row * 2 > 32) {
    return std::nullopt;
  }
  Variant variant = throughput;
  variant.threads_per_row *= 2;
  variant.items = 1;
  variant.block_threads = policy.latency_block_threads;
  return variant;
}

// Whether `rows` rows in `latency` fill at most the policy's share of the device's thread slots,
// the batches that the latency layout serves.
template <typename Variant, typename Policy>
bool latency_fits(std::int64_t rows, const Variant& latency, const DeviceCaps& caps,
                  const Policy& policy) {
  const std::int64_t thread_slots =
      std::int64_t{caps.multiprocessors} * caps.max_threads_per_multiprocessor;
  return rows * latency.threads_per_row <= thread_slots / policy.latency_thread_share;
}

// The blocks per multiprocessor a rows-kernel variant's launch bounds ask for on a device with
// `caps`: the policy's rows_min_resident_eighths of its thread slots, in whole blocks, at least
// one (0 where the policy asks for none). Sets it on `variant`.
template <typename Variant, typename Policy>
void set_rows_min_blocks(Variant& variant, const DeviceCaps& caps, const Policy& policy) {
  variant.min_blocks =
      policy.rows_min_resident_eighths == 0
          ? 0
          : std::max(caps.max_threads_per_multiprocessor * policy.rows_min_resident_eighths / 8 /
                         variant.block_threads,
                     1);
}

// A rows-kernel grid for `rows` rows: a row group per block, at most the policy's blocks (the
// kernels loop over rows, so the grid may stop short of one block per group).
template <typename Variant, typename Policy>
std::int64_t rows_grid(std::int64_t rows, const Variant& variant, const Policy& policy) {
  const std::int64_t rows_per_block = variant.block_threads / variant.threads_per_row;
  return std::min<std::int64_t>(ceil_div(rows, rows_per_block), policy.max_grid_blocks);
}

// A split row cut into blocks_per_row segments of at most tiles_per_block tiles.
struct SplitSegments {
  std::int64_t blocks_per_row = 0;
  std::int64_t tiles_per_block = 0;
};

// The segments of a split row of `tiles` tiles in a batch of `rows`. On chip (`on_chip_most`: the
// most tiles a block holds, tiles_on_chip): as few tiles per block as lets every row be on chip at
// once (most blocks, most bandwidth); when the rows do not fit in one wave, full blocks, so the
// fewest waves. Streamed (`on_chip_most` 0): as many blocks as the grid limit and the block's
// threads allow, which depends on the dim and the device alone, so it fixes the streamed sum
// order. Either way the tiles are spread evenly over the blocks.
inline SplitSegments split_segments(std::int64_t rows, std::int64_t tiles,
                                    std::int64_t on_chip_most, std::int64_t grid_limit,
                                    std::int64_t block_threads) {
  std::int64_t tiles_per_block = 0;
  if (on_chip_most > 0) {
    tiles_per_block = on_chip_most;
    for (std::int64_t per_block = 1; per_block < on_chip_most; ++per_block) {
      if (rows * ceil_div(tiles, per_block) <= grid_limit) {
        tiles_per_block = per_block;
        break;
      }
    }
  } else {
    tiles_per_block = ceil_div(tiles, std::min({tiles, grid_limit, block_threads}));
  }
  SplitSegments segments;
  segments.blocks_per_row = ceil_div(tiles, tiles_per_block);
  segments.tiles_per_block = ceil_div(tiles, segments.blocks_per_row);
  return segments;
}

}  // namespace l2norm::detail::cuda::plan_math

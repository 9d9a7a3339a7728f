// Which l2_norm kernel runs a call, decided on the host from the dtype, the row length, the vector
// width the op layer proved safe and (among layouts of the same sum order) the row count. A row is
// summed in an order fixed by `dim` and the vector width, however many rows come with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/kernels/l2_norm_args.cuh"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "l2norm/registry.hpp"

namespace l2norm::detail::cuda {

// Rows longer than the rows kernel takes run staged (one block per row, the row in shared memory)
// when the row fits one block and the batch has a row for every multiprocessor, else split: on
// chip (each block keeps its segment in registers and shared memory: one read of memory) when the
// row fits the co-resident blocks, else streamed (the scaling pass reads the row again, mostly
// from L2). Staged and on-chip rows are summed in one order (kernels/tiles.cuh), so the row count
// may choose between them. Separate kernels: each compiles only its own mode, which keeps a cold
// compile of any one well under the time of all in one.
enum class KernelKind : std::uint8_t { rows, staged, split_on_chip, split_streamed };

// Values (elements) each thread keeps in registers: rows kernel; staged and split kernels (per
// tile, whose block has kTileBlockThreads).
inline constexpr int kRowsValuesPerThread = 16;
inline constexpr int kTileValuesPerThread = 32;
inline constexpr int kMaxThreadsPerRow = 1024;
inline constexpr int kTileBlockThreads = 512;
// The most tiles a row may have for its split kernel's warps to sum it themselves.
inline constexpr std::int64_t kWarpRowSumTiles = L2NORM_WARP_ROW_SUM_TILES;
// Rows longer than this are staged or split across blocks.
inline constexpr std::int64_t kMaxRowsKernelDim =
    std::int64_t{kMaxThreadsPerRow} * kRowsValuesPerThread;

// What the dispatcher's choice depends on besides the call.
struct DeviceLimits {
  int multiprocessors = 0;
  std::size_t shared_memory_per_block = 0;  // the most one block may opt in to
};

struct L2NormVariant {
  KernelKind kind;
  DType dtype;
  int vector_bytes;     // 16: aligned 16-byte vectors; 8, 4, 2: the unaligned variants
  int threads_per_row;  // staged and split: the whole block
  int items;            // vectors per thread (staged and split: per tile)
  int block_threads;
  EpsMode eps_mode;
  bool scaled;
  // Split on chip, rows of at most kWarpRowSumTiles tiles: every warp sums the row's tile sums
  // itself, with no block reduction (kernels/l2_norm_split.cuh, warp_row_sum).
  bool row_sum_in_warps = false;

  int vector_elements() const { return vector_bytes / static_cast<int>(dtype_size(dtype)); }
  // Staged and split: the bytes of one tile (kernels/tiles.cuh).
  std::size_t tile_bytes() const;
  // A unique small key, for caches on the dispatch path.
  std::uint64_t packed() const;
  KernelSpec spec() const;
  // e.g. "l2_norm_rows<bf16,v16,8x2,add>"
  std::string name() const;
  // The same tile layout, dtype, vector width and options in another long-row kernel (staged,
  // split on chip, split streamed).
  L2NormVariant with_kind(KernelKind other) const;
};

// The variant for a call of `rows` rows on a device with `limits`. The row count only chooses
// between layouts that sum a row in the same order, so a row's result never depends on the batch
// it comes in. Rows longer than the rows kernel takes get staged or split_on_chip; the dispatcher
// turns split_on_chip into split_streamed when the loaded kernel shows that the row does not
// fit.
L2NormVariant choose_l2_norm_variant(DType dtype, std::int64_t dim, int vector_bytes,
                                     EpsMode eps_mode, bool scaled, std::int64_t rows,
                                     const DeviceLimits& limits);
// Tiles of a staged or split row of `dim` elements.
std::int64_t row_tiles(const L2NormVariant& variant, std::int64_t dim);
// Whether one block of the staged kernel can hold a row of `dim` in its shared memory.
bool staged_row_fits(const L2NormVariant& variant, std::int64_t dim,
                     std::size_t shared_memory_per_block);

// Every variant a call of this dtype, dim and options may pick, whatever its pointers, strides,
// row count and device (long dims: the staged and both split kernels).
std::vector<L2NormVariant> l2_norm_variants_for(DType dtype, std::int64_t dim, EpsMode eps_mode,
                                                bool scaled);
// Every variant the dispatcher can ever pick (for the compile-everything test).
std::vector<L2NormVariant> all_l2_norm_variants();

// Registers the embedded kernel sources in `registry` (idempotent).
void register_l2_norm_sources(KernelRegistry& registry);

}  // namespace l2norm::detail::cuda

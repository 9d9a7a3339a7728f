// l2_norm_staged: rows longer than the rows kernel takes but short enough for one block's shared
// memory (with 227 KiB of it: up to 3 f32 or 7 16-bit tiles of 16384 elements). One block per row,
// the whole row staged in dynamic shared memory by cp.async with evict-first (memory is read once
// and written once), summed in tiles.cuh's order, so a row gets the bits the split kernel would
// give it. No other block is waited for: blocks start and finish on their own, several to a
// multiprocessor, so one block's stores run under another's loads. The dispatcher picks it for
// batches of at least one row per multiprocessor; with fewer rows the split kernel spreads each
// row over more multiprocessors.
//
// Defines: those of tiles.cuh (L2NORM_DTYPE, L2NORM_OUT_DTYPE, L2NORM_VEC_BYTES, L2NORM_ITEMS:
// vectors per thread per tile, L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED).
#include "tiles.cuh"

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS, 2)
    l2_norm_staged(const L2NormArgs args) {
  using namespace l2norm_kernels;
  // Per-warp totals of each tile, then group_sum's per-warp totals of the row: separate, since
  // the row's group_sum starts while other threads may still read the tiles' totals.
  __shared__ float tile_scratch_f32[kWarps * kKernelPolicy.max_tiles_per_block];
  __shared__ double tile_scratch_f64[kWarps * kKernelPolicy.max_tiles_per_block];
  __shared__ float row_scratch_f32[kWarps];
  __shared__ double row_scratch_f64[kWarps];
  static_assert(
      sizeof(tile_scratch_f32) + sizeof(tile_scratch_f64) + sizeof(row_scratch_f32) +
              sizeof(row_scratch_f64) <=
          kKernelPolicy.staged_static_shared_bytes,
      "the host reserves the policy's staged_static_shared_bytes of static shared memory");
  extern __shared__ raw_vector_t staged[];

  const long long vectors = args.dim / kVec;
  const long long tiles = (vectors + kTileVectors - 1) / kTileVectors;
  const auto values = [&](long long tile, float* out) {
    read_staged_tile(staged + tile * kTileVectors, out);
  };
  const auto vector_at = [&](long long tile, int item, float* out) {
    read_staged_vector(staged + tile * kTileVectors, item, out);
  };
  for (long long row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const RowOffsets offsets = row_offsets(args, row);
    for (long long tile = 0; tile < tiles; ++tile) {
      stage_tile(args.input, offsets.input, tile, vectors, staged + tile * kTileVectors);
    }
    wait_for_staged_tiles();

    // Zero plus the tile's sum, as the split kernel gathers its tile sums.
    const float sum = group_sum<kBlockThreads>(
        0.0f + tile_sums<kWarps, float>(
                   0, tiles, [&](long long tile) { return thread_sum_of_squares(tile, values); },
                   tile_scratch_f32),
        row_scratch_f32);
    const RowScale row_scale = row_scale_from(sum, args.eps, [&] {
      return group_sum<kBlockThreads>(
          0.0 + tile_sums<kWarps, double>(
                    0, tiles,
                    [&](long long tile) { return rare_thread_sum_of_squares(tile, vector_at); },
                    tile_scratch_f64),
          row_scratch_f64);
    });
    if (threadIdx.x == 0) store_rstd(args, row, row_scale);
    store_scaled_tiles(args, offsets.output, 0, tiles, vectors, row_scale, values, vector_at);
  }
}

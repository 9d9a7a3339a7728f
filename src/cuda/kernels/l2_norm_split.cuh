// l2_norm_split: rows too long for one block. Each row is cut into blocks_per_row segments handled
// by co-resident blocks (cooperative launch); the blocks of one row exchange partial sums through
// the encoder's workspace and meet at a per-row barrier (integer atomics only).
//
// Two modes, each its own kernel (L2NORM_SPLIT_ON_CHIP), chosen on the host from dim and the
// device alone:
// - on chip: a segment's last tile stays in registers and its other tiles in dynamic shared
//   memory, so memory is read once and written once. Every load of the segment is issued
//   (cp.async for the staged tiles) before the first one is waited for, with an L2 evict-first
//   policy. One partial sum per tile, combined in tiles.cuh's order: how tiles map to blocks
//   (which depends on the row count) never changes a row's result, and l2_norm_staged gives the
//   same bits.
// - streamed: rows longer than the chip holds; one partial sum per block and every tile is read
//   again, mostly from L2, for the scaling pass.
//
// Defines: L2NORM_DTYPE, L2NORM_VEC_BYTES, L2NORM_ITEMS (vectors per thread per tile),
// L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED, L2NORM_SPLIT_ON_CHIP (1 on chip, 0
// streamed).
#include "tiles.cuh"

namespace l2norm_kernels {
constexpr bool kOnChip = L2NORM_SPLIT_ON_CHIP != 0;

// On chip, nothing reads the tile from memory again; streamed, the scaling pass does.
__device__ __forceinline__ void load_tile(const L2NormArgs& args, long long row_offset,
                                          long long tile, long long vectors, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = tile_vector(tile, item);
    if (vector < vectors) {
      if constexpr (kOnChip) {
        load_vector_read_once(args.input, row_offset + vector * kVec, x + item * kVec);
      } else {
        load_vector(args.input, row_offset + vector * kVec, x + item * kVec);
      }
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) x[item * kVec + e] = 0.0f;
    }
  }
}

// Waits until all `group_size` blocks of row slot `slot` have arrived. One word per slot: arrivals
// in the low 16 bits, a generation in the high 16 (group_size < 2^16: the grid is far smaller).
// Thread 0 arrives with an acq_rel add after the block barrier, which publishes the block's partial
// sums (their writers fenced them before that barrier) and, for the last block, acquires
// everyone's; the last block turns the count back to zero and bumps the generation in one further
// add, the others watch the generation with acquire loads. Self-resetting, so no memset is needed
// between dispatches and a graph replay finds the words as it left them. (Against separate arrival
// and generation words with fences, this saves a round trip to L2 for the last arriver: H100,
// 8 x 1M f32, last arrival -> last release 2.1 -> 1.7 us; notes/cuda-perf.md v7.)
__device__ __forceinline__ void row_barrier(const L2NormSplitArgs& split, long long slot,
                                            unsigned int group_size) {
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned int* word = split.row_barriers + slot;
    unsigned int before;
    asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;"
                 : "=r"(before)
                 : "l"(word)
                 : "memory");
    if ((before & 0xffffu) == group_size - 1) {
      asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(word),
                   "r"(0x10000u - group_size)
                   : "memory");
    } else {
      unsigned int now;
      do {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(now) : "l"(word) : "memory");
      } while ((now >> 16) == (before >> 16));
    }
  }
  __syncthreads();
}

// Where one wave's partial sums live: the row's partials are contiguous (one per tile on chip,
// one per block streamed), two parities because a block may run one wave ahead of a slower block
// of its row, never two.
struct PartialLayout {
  long long per_row;
  long long first_own;  // this block's first partial, relative to the parity base
  long long parity_stride;
};

// The row's sum of squares in T (f32, or f64 for the rare path), in an order fixed by dim alone:
// on chip tiles.cuh's order; streamed, per block a block-wide tree, then a tree over the blocks.
template <typename T, typename Values>
__device__ __forceinline__ T row_sum_of_squares(const L2NormSplitArgs& split, T* partials,
                                                const PartialLayout& layout, long long wave,
                                                long long slot, long long first_tile,
                                                long long end_tile, Values values, T* scratch) {
  T* base = partials + (wave & 1) * layout.parity_stride;
  if constexpr (kOnChip) {
    const T tile_sum = tile_sums_of_squares<T>(first_tile, end_tile, values, scratch);
    if (threadIdx.x < end_tile - first_tile) {
      __stcg(base + layout.first_own + threadIdx.x, tile_sum);
      // Fenced before row_barrier's block barrier, so thread 0's release there publishes it.
      __threadfence();
    }
  } else {
    T thread_sum = T(0);
    for (long long tile = first_tile; tile < end_tile; ++tile) {
      float x[kValues];
      values(tile, x);
      thread_sum += sum_of_squares_in<T>(x);
    }
    const T block_sum = group_sum<kBlockThreads>(thread_sum, scratch);
    if (threadIdx.x == 0) __stcg(base + layout.first_own, block_sum);
  }
  row_barrier(split, slot, static_cast<unsigned int>(split.blocks_per_row));
  // With at most kBlockThreads units, thread t holds unit t, as tiles.cuh's order asks.
  const T* row_partials = base + slot * layout.per_row;
  T mine = T(0);
  for (long long unit = threadIdx.x; unit < layout.per_row; unit += kBlockThreads) {
    mine += __ldcg(row_partials + unit);
  }
  return group_sum<kBlockThreads>(mine, scratch);
}

}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS)
    l2_norm_split(const L2NormArgs args, const L2NormSplitArgs split) {
  using namespace l2norm_kernels;
  // Per-warp totals of each of the block's tiles (on chip), or of one group_sum.
  constexpr int kScratch = kOnChip ? kWarps * L2NORM_MAX_TILES_PER_BLOCK : kWarps;
  __shared__ float scratch_f32[kScratch];
  __shared__ double scratch_f64[kScratch];
  extern __shared__ raw_vector_t staged[];

  const long long vectors = args.dim / kVec;
  const long long tiles = (vectors + kTileVectors - 1) / kTileVectors;
  const long long slot = blockIdx.x / split.blocks_per_row;
  const long long segment = blockIdx.x % split.blocks_per_row;
  const long long first_tile = segment * split.tiles_per_block;
  const long long end_tile = min(first_tile + split.tiles_per_block, tiles);
  const long long last_tile = end_tile - 1;
  PartialLayout layout;
  layout.per_row = kOnChip ? tiles : split.blocks_per_row;
  layout.first_own = slot * layout.per_row + (kOnChip ? first_tile : segment);
  layout.parity_stride = split.rows_per_wave * layout.per_row;

  float x[kValues];
  for (long long wave = 0;; ++wave) {
    const long long row = wave * split.rows_per_wave + slot;
    // Uniform over the row's blocks: they leave together and nobody waits for them.
    if (row >= args.rows) break;
    const RowOffsets offsets = row_offsets(args, row);

    if constexpr (kOnChip) {
      for (long long tile = first_tile; tile < last_tile; ++tile) {
        stage_tile(args.input, offsets.input, tile, vectors,
                   staged + (tile - first_tile) * kTileVectors);
      }
      load_tile(args, offsets.input, last_tile, vectors, x);
      wait_for_staged_tiles();
    }
    // A tile's values: on chip from registers or shared memory, streamed from memory again.
    const auto values = [&](long long tile, float* out) {
      if constexpr (!kOnChip) {
        load_tile(args, offsets.input, tile, vectors, out);
      } else if (tile == last_tile) {
#pragma unroll
        for (int i = 0; i < kValues; ++i) out[i] = x[i];
      } else {
        read_staged_tile(staged + (tile - first_tile) * kTileVectors, tile, vectors, out);
      }
    };

    const float sum = row_sum_of_squares(split, split.partial_f32, layout, wave, slot, first_tile,
                                         end_tile, values, scratch_f32);
    RowScale row_scale{false, common_inverse_norm(sum, args.eps), 0.0};
    if (needs_rare_path(sum)) {
      const double sum_f64 = row_sum_of_squares(split, split.partial_f64, layout, wave, slot,
                                                first_tile, end_tile, values, scratch_f64);
      row_scale.rare = true;
      row_scale.inverse_f64 = rare_inverse_norm(sum_f64, args.eps);
    }

    for (long long tile = first_tile; tile < end_tile; ++tile) {
      float y[kValues];
      values(tile, y);
      store_scaled_tile(args, offsets.output, tile, vectors, row_scale, y);
    }
  }
}

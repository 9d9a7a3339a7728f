// l2_norm_split: rows too long for one block. Each row is cut into blocks_per_row segments handled
// by co-resident blocks (cooperative launch); the blocks of one row exchange partial sums through
// the encoder's workspace and meet at a per-row barrier (integer atomics only).
//
// Two modes, each its own kernel (L2NORM_SPLIT_ON_CHIP), chosen on the host from dim and the
// device alone:
// - on chip: a segment's last tile stays in registers and its other tiles in dynamic shared
//   memory, so memory is read once and written once. Every load of the segment is issued
//   (cp.async for the staged tiles) before the first one is waited for. One partial sum per tile,
//   combined by a fixed tree over the row's tiles: how tiles map to blocks (which depends on the
//   row count) never changes a row's result. Its loads carry an L2 evict-first policy (each input
//   line is read exactly once), so they recycle each other's L2 lines instead of evicting other
//   dirty data, whose write-back would share DRAM with the reads (H100, 8 x 1M f32 after a memset
//   flush: all tiles loaded at 19.4 -> 16.4 us, see notes/cuda-perf.md v5).
// - streamed: rows longer than the chip holds; one partial sum per block and every tile is read
//   again, mostly from L2, for the scaling pass.
//
// Defines: L2NORM_DTYPE, L2NORM_VEC_BYTES, L2NORM_ITEMS (vectors per thread per tile),
// L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED, L2NORM_SPLIT_ON_CHIP (1 on chip, 0
// streamed).
#include "reduce.cuh"
#include "row_math.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && L2NORM_VEC_BYTES >= 4
#define L2NORM_ASYNC_STAGING 1
#else
#define L2NORM_ASYNC_STAGING 0
#endif

namespace l2norm_kernels {
constexpr bool kOnChip = L2NORM_SPLIT_ON_CHIP != 0;
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kValues = kItems * kVec;
constexpr long long kTileVectors = static_cast<long long>(kBlockThreads) * kItems;
constexpr int kWarps = kBlockThreads / 32;
static_assert(kBlockThreads % 32 == 0 && (kBlockThreads & (kBlockThreads - 1)) == 0,
              "bad block shape");

__device__ __forceinline__ long long tile_vector(long long tile, int item) {
  return tile * kTileVectors + threadIdx.x + static_cast<long long>(item) * kBlockThreads;
}

#if L2NORM_ASYNC_STAGING
__device__ __forceinline__ unsigned long long evict_first_policy() {
  unsigned long long policy;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}
#endif

// load_vector for data this kernel reads exactly once: the line is the first to leave L2.
__device__ __forceinline__ void load_vector_read_once(const void* base, long long offset,
                                                      float* out) {
#if L2NORM_ASYNC_STAGING
  const char* address = static_cast<const char*>(base) + offset * kElementBytes;
  raw_vector_t raw;
#if L2NORM_VEC_BYTES == 16
  asm volatile("ld.global.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
               : "=r"(raw.x), "=r"(raw.y), "=r"(raw.z), "=r"(raw.w)
               : "l"(address), "l"(evict_first_policy()));
#elif L2NORM_VEC_BYTES == 8
  asm volatile("ld.global.L2::cache_hint.v2.u32 {%0, %1}, [%2], %3;"
               : "=r"(raw.x), "=r"(raw.y)
               : "l"(address), "l"(evict_first_policy()));
#else
  asm volatile("ld.global.L2::cache_hint.u32 %0, [%1], %2;"
               : "=r"(raw)
               : "l"(address), "l"(evict_first_policy()));
#endif
  widen_vector(raw, out);
#else
  load_vector(base, offset, out);
#endif
}

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

// Starts copying a full tile (only a row's last tile can be partial, and that one is never
// staged) into a shared-memory slot. Each thread copies exactly the vectors it reads back later,
// consecutive threads 16 bytes apart: no bank conflicts and no barrier needed.
__device__ __forceinline__ void stage_tile(const void* input, long long row_offset, long long tile,
                                           raw_vector_t* slot) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const char* source = static_cast<const char*>(input) +
                         (row_offset + tile_vector(tile, item) * kVec) * kElementBytes;
    raw_vector_t* target = slot + threadIdx.x + item * kBlockThreads;
#if L2NORM_ASYNC_STAGING
    const auto address = static_cast<unsigned int>(__cvta_generic_to_shared(target));
#if L2NORM_VEC_BYTES == 16
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(address),
                 "l"(source), "l"(evict_first_policy())
                 : "memory");
#else
    asm volatile("cp.async.ca.shared.global.L2::cache_hint [%0], [%1], %2, %3;" ::"r"(address),
                 "l"(source), "n"(L2NORM_VEC_BYTES), "l"(evict_first_policy())
                 : "memory");
#endif
#else
    *target = *reinterpret_cast<const raw_vector_t*>(source);
#endif
  }
}

// The calling thread's own staged copies have landed and are visible to it.
__device__ __forceinline__ void wait_for_staged_tiles() {
#if L2NORM_ASYNC_STAGING
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

__device__ __forceinline__ void read_staged_tile(const raw_vector_t* slot, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    load_vector(slot + threadIdx.x + item * kBlockThreads, 0, x + item * kVec);
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
// per unit (tile or block) a block-wide tree, then per row a tree over the units.
template <typename T, typename Values>
__device__ __forceinline__ T row_sum_of_squares(const L2NormSplitArgs& split, T* partials,
                                                const PartialLayout& layout, long long wave,
                                                long long slot, long long first_tile,
                                                long long end_tile, Values values, T* scratch) {
  T* base = partials + (wave & 1) * layout.parity_stride;
  T thread_sum = T(0);
  for (long long tile = first_tile; tile < end_tile; ++tile) {
    float x[kValues];
    values(tile, x);
    T squares;
    if constexpr (sizeof(T) == sizeof(double)) {
      squares = sum_of_squares_f64(x);
    } else {
      squares = sum_of_squares(x);
    }
    if constexpr (kOnChip) {
      // group_sum's first step per tile; its second, for all tiles at once, below.
      squares = warp_butterfly<32>(squares);
      if (threadIdx.x % 32 == 0) scratch[(tile - first_tile) * kWarps + threadIdx.x / 32] = squares;
    } else {
      thread_sum += squares;
    }
  }
  if constexpr (kOnChip) {
    // One barrier for all the block's tiles instead of two per tile: thread t finishes tile t's
    // sum with the tree group_sum uses, so every tile sum keeps its bits. (H100, 8 x 1M f32:
    // the per-tile sums took about 1.2 us more than one sum for the whole block; notes v7.)
    __syncthreads();
    const long long own_tile = threadIdx.x;
    if (own_tile < end_tile - first_tile) {
      __stcg(base + layout.first_own + own_tile, warps_tree<kWarps>(scratch + own_tile * kWarps));
      // Fenced before row_barrier's block barrier, so thread 0's release there publishes it.
      __threadfence();
    }
  } else {
    const T block_sum = group_sum<kBlockThreads>(thread_sum, scratch);
    if (threadIdx.x == 0) __stcg(base + layout.first_own, block_sum);
  }
  row_barrier(split, slot, static_cast<unsigned int>(split.blocks_per_row));
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
  constexpr int kScratch = kOnChip ? kWarps * L2NORM_SPLIT_MAX_TILES_PER_BLOCK : kWarps;
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
        stage_tile(args.input, offsets.input, tile, staged + (tile - first_tile) * kTileVectors);
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
        read_staged_tile(staged + (tile - first_tile) * kTileVectors, out);
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
#pragma unroll
      for (int item = 0; item < kItems; ++item) {
        const long long vector = tile_vector(tile, item);
        if (vector < vectors) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) {
            y[item * kVec + e] = output_value(row_scale.apply(y[item * kVec + e]), args.scale);
          }
          store_vector(args.output, offsets.output + vector * kVec, y + item * kVec);
        }
      }
    }
  }
}

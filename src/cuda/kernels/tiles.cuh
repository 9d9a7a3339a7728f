// Tiles: how the kernels for rows longer than one thread group holds (l2_norm_staged,
// l2_norm_split) cut a row, stage it in shared memory and sum it. A tile is
// L2NORM_BLOCK_THREADS * L2NORM_ITEMS vectors; thread t owns vectors t, t + L2NORM_BLOCK_THREADS,
// ... of every tile. A tile's sum of squares is the thread's pairwise sum of its values, then
// group_sum's two steps over the block; a row's sum is group_sum over the block, thread t holding
// zero plus tile t's sum (plus tile t + L2NORM_BLOCK_THREADS's, ..., for rows of more tiles). Both
// kernels sum this way (the split kernel's on-chip mode), so a row gets the same bits from either.
//
// Defines: L2NORM_DTYPE, L2NORM_VEC_BYTES, L2NORM_ITEMS, L2NORM_BLOCK_THREADS.
#pragma once

#include "reduce.cuh"
#include "row_math.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && L2NORM_VEC_BYTES >= 4
#define L2NORM_ASYNC_STAGING 1
#else
#define L2NORM_ASYNC_STAGING 0
#endif

namespace l2norm_kernels {
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

// load_vector for data a kernel reads exactly once: the line is the first to leave L2, so it
// recycles the input's own lines instead of evicting other dirty data, whose write-back would share
// DRAM with the reads (H100, 8 x 1M f32 after a memset flush: all tiles loaded at 19.4 -> 16.4 us,
// notes/cuda-perf.md v5).
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

// Starts copying the row's vectors of `tile` (those below `vectors`) into a shared-memory slot.
// Each thread copies exactly the vectors it reads back later, consecutive threads 16 bytes apart:
// no bank conflicts and no barrier needed. The copies read the input once, with evict-first.
__device__ __forceinline__ void stage_tile(const void* input, long long row_offset, long long tile,
                                           long long vectors, raw_vector_t* slot) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = tile_vector(tile, item);
    if (vector >= vectors) break;
    const char* source =
        static_cast<const char*>(input) + (row_offset + vector * kVec) * kElementBytes;
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

// The thread's values of a staged tile, zero past the row's end (as a tile loaded from memory).
__device__ __forceinline__ void read_staged_tile(const raw_vector_t* slot, long long tile,
                                                 long long vectors, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    if (tile_vector(tile, item) < vectors) {
      load_vector(slot + threadIdx.x + item * kBlockThreads, 0, x + item * kVec);
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) x[item * kVec + e] = 0.0f;
    }
  }
}

template <typename T>
__device__ __forceinline__ T sum_of_squares_in(const float (&x)[kValues]) {
  if constexpr (sizeof(T) == sizeof(double)) {
    return sum_of_squares_f64(x);
  } else {
    return sum_of_squares(x);
  }
}

// The sums of squares of tiles first_tile .. end_tile - 1 (at most
// L2NORM_MAX_TILES_PER_BLOCK), in T (f32, or f64 for the rare path): thread t returns tile
// first_tile + t's sum (others return zero). `values(tile, x)` gives the thread's values of a
// tile; `scratch` holds kWarps values per tile. Each tile gets group_sum's warp butterfly as it is
// read and, after one block barrier for all tiles, its cross-warp tree from thread t: group_sum's
// order with one barrier instead of two per tile (H100, 8 x 1M f32: the per-tile sums took about
// 1.2 us more than one sum for the whole block; notes/cuda-perf.md v7).
template <typename T, typename Values>
__device__ __forceinline__ T tile_sums_of_squares(long long first_tile, long long end_tile,
                                                  Values values, T* scratch) {
  for (long long tile = first_tile; tile < end_tile; ++tile) {
    float x[kValues];
    values(tile, x);
    const T squares = warp_butterfly<32>(sum_of_squares_in<T>(x));
    if (threadIdx.x % 32 == 0) scratch[(tile - first_tile) * kWarps + threadIdx.x / 32] = squares;
  }
  __syncthreads();
  const long long own_tile = threadIdx.x;
  return own_tile < end_tile - first_tile ? warps_tree<kWarps>(scratch + own_tile * kWarps) : T(0);
}

// How a row is scaled, from its f32 sum of squares; `sum_f64()` gives the f64 sum, wanted only
// for rare rows. The sum is the same on every thread of the block, so the whole block takes the
// rare branch or none of it (sum_f64 may synchronize the block).
template <typename SumF64>
__device__ __forceinline__ RowScale row_scale_from(float sum, float eps, SumF64 sum_f64) {
  RowScale row_scale{false, common_inverse_norm(sum, eps), 0.0};
  if (needs_rare_path(sum)) {
    row_scale.rare = true;
    row_scale.inverse_f64 = rare_inverse_norm(sum_f64(), eps);
  }
  return row_scale;
}

template <bool Rare>
__device__ __forceinline__ void scale_and_store_tile(const L2NormArgs& args, long long row_offset,
                                                     long long tile, long long vectors,
                                                     const RowScale& row_scale, float* y) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = tile_vector(tile, item);
    if (vector < vectors) {
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        float& value = y[item * kVec + e];
        value = Rare ? rare_output(value, row_scale.inverse_f64, args.scale)
                     : common_output(value, row_scale.inverse, args.scale);
      }
      store_vector(args.output, row_offset + vector * kVec, y + item * kVec);
    }
  }
}

// Scales the thread's values of tiles first_tile .. end_tile - 1 (as `values` gives them) and
// stores those inside the row. One branch per row, not a choice per element: the common path never
// touches f64 registers.
template <typename Values>
__device__ __forceinline__ void store_scaled_tiles(const L2NormArgs& args, long long row_offset,
                                                   long long first_tile, long long end_tile,
                                                   long long vectors, const RowScale& row_scale,
                                                   Values values) {
  for (long long tile = first_tile; tile < end_tile; ++tile) {
    float y[kValues];
    values(tile, y);
    if (row_scale.rare) {
      scale_and_store_tile<true>(args, row_offset, tile, vectors, row_scale, y);
    } else {
      scale_and_store_tile<false>(args, row_offset, tile, vectors, row_scale, y);
    }
  }
}

}  // namespace l2norm_kernels

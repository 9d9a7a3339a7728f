// Tiles: how the kernels for rows longer than one thread group holds (l2_norm_staged,
// l2_norm_split) cut a row, stage it in shared memory and sum it. A tile is
// L2NORM_BLOCK_THREADS * L2NORM_ITEMS vectors; thread t owns vectors t, t + L2NORM_BLOCK_THREADS,
// ... of every tile. A tile's sum of squares is the thread's pairwise sum of its values, then
// group_sum's two steps over the block; a row's sum is group_sum over the block, thread t holding
// zero plus tile t's sum (plus tile t + L2NORM_BLOCK_THREADS's, ..., for rows of more tiles). Both
// kernels sum this way (the split kernel's on-chip mode), so a row gets the same bits from either.
//
// The configuration comes from defines (one per translation unit): L2NORM_DTYPE (input),
// L2NORM_OUT_DTYPE (output; dtype codes of l2_norm_policy.cuh), L2NORM_VEC_BYTES (input bytes per
// vector; the output moves the same elements in its own type), L2NORM_ITEMS, L2NORM_BLOCK_THREADS,
// L2NORM_EPS_CLAMP, L2NORM_SCALED. Tiles, staging and sums are in input vectors, so neither the
// order nor the shared memory depends on the output type.
#pragma once

#include "reduce.cuh"
#include "row_math.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && L2NORM_VEC_BYTES >= 4
#define L2NORM_ASYNC_STAGING 1
#else
#define L2NORM_ASYNC_STAGING 0
#endif

namespace l2norm_kernels {
typedef Element<L2NORM_DTYPE> In;
typedef Element<L2NORM_OUT_DTYPE> Out;
constexpr bool kClamp = L2NORM_EPS_CLAMP != 0;
constexpr bool kScaled = L2NORM_SCALED != 0;
// Elements per vector, and one input vector as it is read and staged.
constexpr int kVec = L2NORM_VEC_BYTES / In::kBytes;
typedef raw_t<In, kVec> raw_vector_t;
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kValues = kItems * kVec;
constexpr long long kTileVectors = static_cast<long long>(kBlockThreads) * kItems;
constexpr int kWarps = kBlockThreads / 32;
static_assert(kBlockThreads % 32 == 0 && (kBlockThreads & (kBlockThreads - 1)) == 0,
              "bad block shape");

// The thread's vector `item` of a tile, counted from the tile's first vector.
__device__ __forceinline__ int vector_in_tile(int item) {
  return static_cast<int>(threadIdx.x) + item * kBlockThreads;
}

// How many of `tile`'s vectors lie inside a row of `vectors` (all but in the row's last tile).
__device__ __forceinline__ int vectors_inside(long long tile, long long vectors) {
  return static_cast<int>(min(vectors - tile * kTileVectors, kTileVectors));
}

// The address of a tile's first element in a row of elements of E starting at element
// `row_offset` of `base`. The thread's vectors are then small constant offsets from it: no 64-bit
// arithmetic per vector.
template <class E, typename Byte>
__device__ __forceinline__ Byte* tile_start(Byte* base, long long row_offset, long long tile) {
  return base + (row_offset + tile * kTileVectors * kVec) * E::kBytes;
}

// load_vector for data a kernel reads exactly once: with asynchronous staging, an L2 evict-first
// load (element.cuh).
__device__ __forceinline__ void load_vector_read_once(const void* base, long long offset,
                                                      float* out) {
#if L2NORM_ASYNC_STAGING
  const char* address = static_cast<const char*>(base) + offset * In::kBytes;
  widen_raw<In, kVec>(load_raw_evict_first<L2NORM_VEC_BYTES>(address), out);
#else
  load_vector<In, kVec>(base, offset, out);
#endif
}

// Starts copying the row's vectors of `tile` into a shared-memory slot; vectors at or past
// `vectors` are filled with zeros (nothing is read for them), so readers of the slot need no
// bounds checks. Each thread copies exactly the vectors it reads back later, consecutive threads
// 16 bytes apart: no bank conflicts and no barrier needed. The copies read the input once, with
// evict-first.
__device__ __forceinline__ void stage_tile(const void* input, long long row_offset, long long tile,
                                           long long vectors, raw_vector_t* slot) {
  const char* start = tile_start<In>(static_cast<const char*>(input), row_offset, tile);
  const int inside_count = vectors_inside(tile, vectors);
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const int vector = vector_in_tile(item);
    const bool inside = vector < inside_count;
    // Outside the row, the tile's first vector stands in as a valid address that is not read.
    const char* source = inside ? start + vector * L2NORM_VEC_BYTES : start;
    raw_vector_t* target = slot + threadIdx.x + item * kBlockThreads;
#if L2NORM_ASYNC_STAGING
    copy_async_evict_first<L2NORM_VEC_BYTES>(target, source, inside);
#else
    *target = inside ? *reinterpret_cast<const raw_vector_t*>(source) : raw_vector_t{};
#endif
  }
}

// The calling thread's own staged copies have landed and are visible to it.
__device__ __forceinline__ void wait_for_staged_tiles() {
#if L2NORM_ASYNC_STAGING
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

// The thread's vector `item` of a staged tile (zero past the row's end, as stage_tile filled it).
__device__ __forceinline__ void read_staged_vector(const raw_vector_t* slot, int item, float* out) {
  widen_raw<In, kVec>(slot[threadIdx.x + item * kBlockThreads], out);
}

// The thread's values of a staged tile.
__device__ __forceinline__ void read_staged_tile(const raw_vector_t* slot, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) read_staged_vector(slot, item, x + item * kVec);
}

// The thread's vector `item` of `tile` read from memory, zero past the row's end; ReadOnce for
// data no pass reads again.
template <bool ReadOnce>
__device__ __forceinline__ void load_tile_vector(const void* input, long long row_offset,
                                                 long long tile, long long vectors, int item,
                                                 float* out) {
  const char* start = tile_start<In>(static_cast<const char*>(input), row_offset, tile);
  const int vector = vector_in_tile(item);
  if (vector < vectors_inside(tile, vectors)) {
    if constexpr (ReadOnce) {
      load_vector_read_once(start, vector * kVec, out);
    } else {
      load_vector<In, kVec>(start, vector * kVec, out);
    }
  } else {
#pragma unroll
    for (int e = 0; e < kVec; ++e) out[e] = 0.0f;
  }
}

// The thread's f32 sum of squares of a tile whose values `values(tile, x)` gives (the common
// path, unrolled, the values in registers).
template <typename Values>
__device__ __forceinline__ float thread_sum_of_squares(long long tile, Values values) {
  float x[kValues];
  values(tile, x);
  return sum_of_squares(x);
}

// The rare path (rows whose f32 sum fails, needs_rare_path) runs as loops that are not unrolled,
// over one vector at a time from `vector_at(tile, item, out)`: the thread's vector `item` of
// `tile`, zero past the row's end, read from where a run-time index reaches it (shared memory, or
// memory again for a tile the common path holds in registers). Rows that hardly ever occur then
// cost little code and few registers, and no register spills.
static_assert(kVec <= 8 && kValues % 8 == 0, "the rare path sums chunks of eight values");
constexpr int kRareChunkVectors = 8 / kVec;

// The thread's f64 sum of squares of a tile, in sum_of_squares_f64's order over its kValues
// values: a pairwise tree per chunk of eight, then chunk_tree over the chunks.
template <typename VectorAt>
__device__ __forceinline__ double rare_thread_sum_of_squares(long long tile, VectorAt vector_at) {
  return chunk_tree<double, kValues / 8>([&](int chunk) {
    float x[8];
#pragma unroll
    for (int v = 0; v < kRareChunkVectors; ++v) {
      vector_at(tile, chunk * kRareChunkVectors + v, x + v * kVec);
    }
    return sum_of_squares_f64(x);
  });
}

// How a row is scaled, from its f32 sum of squares; `sum_f64()` gives the f64 sum, wanted only
// for rare rows. The sum is the same on every thread of the block, so the whole block takes the
// rare branch or none of it (sum_f64 may synchronize the block).
template <typename SumF64>
__device__ __forceinline__ RowScale row_scale_from(float sum, float eps, SumF64 sum_f64) {
  RowScale row_scale{false, common_inverse_norm<kClamp>(sum, eps), 0.0};
  if (needs_rare_path(sum)) {
    row_scale.rare = true;
    row_scale.inverse_f64 = rare_inverse_norm<kClamp>(sum_f64(), eps);
  }
  return row_scale;
}

// Scales the thread's values of tiles first_tile .. end_tile - 1 and stores those inside the row,
// rounded once to the output type: a common row's values as `values(tile, y)` gives them, a rare
// row's from `vector_at`. One branch per row, not a choice per element: the common path never
// touches f64 registers.
template <typename Values, typename VectorAt>
__device__ __forceinline__ void store_scaled_tiles(const L2NormArgs& args, long long row_offset,
                                                   long long first_tile, long long end_tile,
                                                   long long vectors, const RowScale& row_scale,
                                                   Values values, VectorAt vector_at) {
  for (long long tile = first_tile; tile < end_tile; ++tile) {
    char* start = tile_start<Out>(static_cast<char*>(args.output), row_offset, tile);
    const int inside_count = vectors_inside(tile, vectors);
    if (row_scale.rare) {
#pragma unroll 1
      for (int item = 0; item < kItems; ++item) {
        const int vector = vector_in_tile(item);
        if (vector >= inside_count) break;
        float y[kVec];
        vector_at(tile, item, y);
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
          y[e] = rare_output<Out, kScaled>(y[e], row_scale.inverse_f64, args.scale);
        }
        store_vector<Out, kVec>(start, vector * kVec, y);
      }
    } else {
      float y[kValues];
      values(tile, y);
#pragma unroll
      for (int item = 0; item < kItems; ++item) {
        const int vector = vector_in_tile(item);
        if (vector < inside_count) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) {
            float& value = y[item * kVec + e];
            value = common_output<Out, kScaled>(value, row_scale.inverse, args.scale);
          }
          store_vector<Out, kVec>(start, vector * kVec, y + item * kVec);
        }
      }
    }
  }
}

}  // namespace l2norm_kernels

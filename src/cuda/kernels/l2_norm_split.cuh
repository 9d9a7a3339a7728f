// l2_norm_split: rows too long for one block. Each row is cut into blocks_per_row segments handled
// by co-resident blocks (cooperative launch); the blocks of one row exchange their partial sums
// through the encoder's workspace and meet at a per-row barrier (integer atomics only; the partials
// are combined in segment order, so the result is deterministic). A segment of one tile stays in
// registers between the sum and the scaling (one read of memory); longer segments are read again,
// mostly from L2.
//
// Defines: L2NORM_DTYPE, L2NORM_VEC_BYTES, L2NORM_ITEMS (vectors per thread per tile),
// L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED.
#include "reduce.cuh"
#include "row_math.cuh"

namespace l2norm_kernels {
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kValues = kItems * kVec;
constexpr long long kTileVectors = static_cast<long long>(kBlockThreads) * kItems;
static_assert(kBlockThreads % 32 == 0 && (kBlockThreads & (kBlockThreads - 1)) == 0,
              "bad block shape");

__device__ __forceinline__ void load_tile(const L2NormArgs& args, long long row_offset,
                                          long long tile, long long vectors, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector =
        tile * kTileVectors + threadIdx.x + static_cast<long long>(item) * kBlockThreads;
    if (vector < vectors) {
      load_vector(args.input, row_offset + vector * kVec, x + item * kVec);
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) x[item * kVec + e] = 0.0f;
    }
  }
}

// Waits until all `group_size` blocks of row slot `slot` have arrived. Self-resetting: the last
// block to arrive zeroes the counter and bumps the slot's generation, which the others watch, so
// no memset is needed between dispatches and a graph replay finds the counters as it left them.
__device__ __forceinline__ void row_barrier(const L2NormSplitArgs& split, long long slot,
                                            unsigned int group_size) {
  __syncthreads();
  if (threadIdx.x == 0) {
    volatile unsigned int* generation = split.generations + slot;
    const unsigned int seen = *generation;
    __threadfence();
    const unsigned int arrived = atomicAdd(split.arrivals + slot, 1u);
    if (arrived == group_size - 1) {
      atomicExch(split.arrivals + slot, 0u);
      __threadfence();
      atomicAdd(split.generations + slot, 1u);
    } else {
      while (*generation == seen) __nanosleep(64);
    }
    __threadfence();
  }
  __syncthreads();
}

// Publishes this block's partial sum and returns the row total, combined in segment order.
template <typename T>
__device__ __forceinline__ T row_total(T block_partial, T* partials, const L2NormSplitArgs& split,
                                       long long slot, T* scratch) {
  if (threadIdx.x == 0) __stcg(partials + blockIdx.x, block_partial);
  row_barrier(split, slot, static_cast<unsigned int>(split.blocks_per_row));
  const T mine = threadIdx.x < split.blocks_per_row
                     ? __ldcg(partials + slot * split.blocks_per_row + threadIdx.x)
                     : T(0);
  return group_sum<kBlockThreads>(mine, scratch);
}

}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS)
    l2_norm_split(const L2NormArgs args, const L2NormSplitArgs split) {
  using namespace l2norm_kernels;
  __shared__ float scratch_f32[kBlockThreads / 32];
  __shared__ double scratch_f64[kBlockThreads / 32];

  const long long vectors = args.dim / kVec;
  const long long tiles = (vectors + kTileVectors - 1) / kTileVectors;
  const long long slot = blockIdx.x / split.blocks_per_row;
  const long long segment = blockIdx.x % split.blocks_per_row;
  const long long first_tile = segment * split.tiles_per_block;
  const long long end_tile = min(first_tile + split.tiles_per_block, tiles);
  const bool resident = split.tiles_per_block == 1;

  float x[kValues];
  for (long long wave = 0;; ++wave) {
    const long long row = wave * split.rows_per_wave + slot;
    // Uniform over the row's blocks: they leave together and nobody waits for them.
    if (row >= args.rows) break;
    // Two parities: a block may run one wave ahead of a slower block of its row, never two.
    const long long parity_offset = (wave & 1) * static_cast<long long>(gridDim.x);
    const RowOffsets offsets = row_offsets(args, row);

    float thread_sum = 0.0f;
    for (long long tile = first_tile; tile < end_tile; ++tile) {
      load_tile(args, offsets.input, tile, vectors, x);
      thread_sum += sum_of_squares(x);
    }
    const float block_sum = group_sum<kBlockThreads>(thread_sum, scratch_f32);
    const float sum =
        row_total(block_sum, split.partial_f32 + parity_offset, split, slot, scratch_f32);

    RowScale row_scale{false, common_inverse_norm(sum, args.eps), 0.0};
    if (needs_rare_path(sum)) {
      double thread_sum_f64 = 0.0;
      for (long long tile = first_tile; tile < end_tile; ++tile) {
        if (!resident) load_tile(args, offsets.input, tile, vectors, x);
        thread_sum_f64 += sum_of_squares_f64(x);
      }
      const double block_sum_f64 = group_sum<kBlockThreads>(thread_sum_f64, scratch_f64);
      const double sum_f64 =
          row_total(block_sum_f64, split.partial_f64 + parity_offset, split, slot, scratch_f64);
      row_scale.rare = true;
      row_scale.inverse_f64 = rare_inverse_norm(sum_f64, args.eps);
    }

    for (long long tile = first_tile; tile < end_tile; ++tile) {
      if (!resident) load_tile(args, offsets.input, tile, vectors, x);
#pragma unroll
      for (int item = 0; item < kItems; ++item) {
        const long long vector =
            tile * kTileVectors + threadIdx.x + static_cast<long long>(item) * kBlockThreads;
        if (vector < vectors) {
          float y[kVec];
#pragma unroll
          for (int e = 0; e < kVec; ++e) {
            y[e] = output_value(row_scale.apply(x[item * kVec + e]), args.scale);
          }
          store_vector(args.output, offsets.output + vector * kVec, y);
        }
      }
    }
  }
}

// group_sum: the one reduction every l2norm kernel uses.
//
// Overview: sums one value per thread over a group of `Group` consecutive threads (a power of two,
// 1 .. blockDim.x; groups never straddle warps unless they span whole warps) and returns the total
// to EVERY thread of the group.
//
// Order: fixed. Inside a warp an xor butterfly (every lane adds the same two operands, in either
// order, so all lanes hold bitwise the same value); across warps the per-warp totals are combined
// by a pairwise tree in warp order. The result depends only on the values and `Group`, never on
// timing, so the kernels are bitwise deterministic.
//
// Contract: every thread of the warp (Group <= 32) or of the block (Group > 32) must call it, with
// the same Group. `scratch` must hold blockDim.x / 32 values of T and is free again on return
// (the call ends with a barrier when Group > 32).
#pragma once

namespace l2norm_kernels {

// The two steps of group_sum, for kernels that interleave several sums (see
// l2_norm_split.cuh). warp_butterfly: the sum over `Lanes` consecutive lanes (a power of two,
// <= 32), returned to every one of them.
template <int Lanes, typename T>
__device__ __forceinline__ T warp_butterfly(T value) {
  static_assert((Lanes & (Lanes - 1)) == 0 && Lanes <= 32, "warp_butterfly needs 2^k <= 32 lanes");
#pragma unroll
  for (int offset = Lanes / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

// warps_tree: the sum of `Warps` per-warp totals, in a pairwise tree in warp order.
template <int Warps, typename T>
__device__ __forceinline__ T warps_tree(const T* totals) {
  T partial[Warps];
#pragma unroll
  for (int w = 0; w < Warps; ++w) partial[w] = totals[w];
#pragma unroll
  for (int stride = 1; stride < Warps; stride *= 2) {
#pragma unroll
    for (int w = 0; w + stride < Warps; w += 2 * stride) partial[w] += partial[w + stride];
  }
  return partial[0];
}

template <int Group, typename T>
__device__ __forceinline__ T group_sum(T value, T* scratch) {
  static_assert((Group & (Group - 1)) == 0, "group_sum needs a power-of-two group");
  value = warp_butterfly<(Group < 32 ? Group : 32)>(value);
  if constexpr (Group > 32) {
    constexpr int kWarps = Group / 32;
    const int warp = static_cast<int>(threadIdx.x) / 32;
    if (threadIdx.x % 32 == 0) scratch[warp] = value;
    __syncthreads();
    value = warps_tree<kWarps>(scratch + (warp - warp % kWarps));
    __syncthreads();
  }
  return value;
}

// tile_sums: group_sum of each of a block's tiles first_tile .. end_tile - 1 (at most 32 * Warps
// of them) in T, for a block of `Warps` warps: thread t returns tile first_tile + t's sum (others
// return zero). `thread_sum(tile)` gives the thread's value of a tile; `scratch` holds Warps values
// per tile. Each tile gets warp_butterfly as it is read and, after one block barrier for all tiles,
// warps_tree from thread t: group_sum's order with one barrier instead of two per tile. Every
// thread of the block must call it.
template <int Warps, typename T, typename ThreadSum>
__device__ __forceinline__ T tile_sums(long long first_tile, long long end_tile,
                                       const ThreadSum& thread_sum, T* scratch) {
  for (long long tile = first_tile; tile < end_tile; ++tile) {
    const T sum = warp_butterfly<32>(thread_sum(tile));
    if (threadIdx.x % 32 == 0) scratch[(tile - first_tile) * Warps + threadIdx.x / 32] = sum;
  }
  __syncthreads();
  const long long own_tile = threadIdx.x;
  return own_tile < end_tile - first_tile ? warps_tree<Warps>(scratch + own_tile * Warps) : T(0);
}

__device__ constexpr int log2_of(int power_of_two) {
  return power_of_two <= 1 ? 0 : 1 + log2_of(power_of_two / 2);
}

// chunk_tree: the sum of `Chunks` values (a power of two) in a pairwise tree in index order,
// `chunk_sum(chunk)` giving value `chunk`, in a loop that is not unrolled (the kernels' rare paths
// sum a thread's tile a chunk of eight values at a time with it). The tree grows as the chunks
// arrive, in registers: waiting[k] holds a finished left subtree of 2^k chunks until its right
// sibling is done (chunk's bit k set), as a binary counter carries.
template <typename T, int Chunks, typename ChunkSum>
__device__ __forceinline__ T chunk_tree(const ChunkSum& chunk_sum) {
  static_assert((Chunks & (Chunks - 1)) == 0, "the chunk tree needs a power-of-two count");
  constexpr int kLevels = log2_of(Chunks);
  T waiting[kLevels + 1];
  T sum = T(0);
#pragma unroll 1
  for (int chunk = 0; chunk < Chunks; ++chunk) {
    sum = chunk_sum(chunk);
    bool carrying = true;
#pragma unroll
    for (int level = 0; level < kLevels; ++level) {
      if (carrying) {
        if ((chunk >> level) & 1) {
          sum = waiting[level] + sum;
        } else {
          waiting[level] = sum;
          carrying = false;
        }
      }
    }
  }
  // The last chunk (every bit set) carried through every level: sum is the whole tree.
  return sum;
}

// True on every participating thread if `predicate` holds on any thread of the warp (Group <= 32)
// or of the block (Group > 32): lets a whole reduction group take a rare branch together.
template <int Group>
__device__ __forceinline__ bool group_any(bool predicate) {
  if constexpr (Group > 32) {
    return __syncthreads_or(predicate) != 0;
  } else {
    return __any_sync(0xffffffffu, predicate);
  }
}

}  // namespace l2norm_kernels

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

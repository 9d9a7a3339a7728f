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

template <int Group, typename T>
__device__ __forceinline__ T group_sum(T value, T* scratch) {
  static_assert((Group & (Group - 1)) == 0, "group_sum needs a power-of-two group");
  constexpr int kLanes = Group < 32 ? Group : 32;
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  if constexpr (Group > 32) {
    constexpr int kWarps = Group / 32;
    const int warp = static_cast<int>(threadIdx.x) / 32;
    if (threadIdx.x % 32 == 0) scratch[warp] = value;
    __syncthreads();
    T partial[kWarps];
    const int first_warp = warp - warp % kWarps;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) partial[w] = scratch[first_warp + w];
#pragma unroll
    for (int stride = 1; stride < kWarps; stride *= 2) {
#pragma unroll
      for (int w = 0; w + stride < kWarps; w += 2 * stride) partial[w] += partial[w + stride];
    }
    __syncthreads();
    value = partial[0];
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

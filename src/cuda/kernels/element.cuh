// Element types and their exact conversions, as template parameters: a kernel names the element
// type of each tensor it touches (F32, F16, BF16, or Element<code> for an L2NORM_DTYPE_* code), so
// one translation unit may hold tensors of several dtypes and several kernel configurations. No
// L2NORM_ define is read here.
//
// f16 and bf16 are raw 16-bit patterns: NVRTC sees no toolkit headers, and the PTX conversions
// below are the exact round-to-nearest-even ones (NaN stays NaN, subnormals are kept). Every
// kernel converts through these functions and no others.
#pragma once

#include "l2_norm_policy.cuh"

namespace l2norm_kernels {

// ---- element traits: kCode (an L2NORM_DTYPE_* code), kBytes, widen (exact), narrow (round to
// nearest even, NaN kept) ----

struct F32 {
  static constexpr int kCode = L2NORM_DTYPE_F32;
  static constexpr int kBytes = 4;
  static __device__ __forceinline__ float widen(unsigned int bits) { return __uint_as_float(bits); }
  static __device__ __forceinline__ unsigned int narrow(float value) {
    return __float_as_uint(value);
  }
};

struct F16 {
  static constexpr int kCode = L2NORM_DTYPE_F16;
  static constexpr int kBytes = 2;
  static __device__ __forceinline__ float widen(unsigned short bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
  }
  static __device__ __forceinline__ unsigned short narrow(float value) {
    unsigned short bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
  }
};

struct BF16 {
  static constexpr int kCode = L2NORM_DTYPE_BF16;
  static constexpr int kBytes = 2;
  static __device__ __forceinline__ float widen(unsigned short bits) {
    return __uint_as_float(static_cast<unsigned int>(bits) << 16);
  }
  static __device__ __forceinline__ unsigned short narrow(float value) {
    unsigned short bits;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
  }
};

template <int Code>
struct ElementOfCode;
template <>
struct ElementOfCode<L2NORM_DTYPE_F32> {
  typedef F32 type;
};
template <>
struct ElementOfCode<L2NORM_DTYPE_F16> {
  typedef F16 type;
};
template <>
struct ElementOfCode<L2NORM_DTYPE_BF16> {
  typedef BF16 type;
};
// The element type of an L2NORM_DTYPE_* code (what the host passes in defines).
template <int Code>
using Element = typename ElementOfCode<Code>::type;

// Rounds to element type E and back: the value a store followed by a load would give.
template <class E>
__device__ __forceinline__ float round_to(float value) {
  if constexpr (E::kBytes == 4) {
    return value;
  } else {
    return E::widen(E::narrow(value));
  }
}

// ---- raw vectors: one memory access of 2, 4, 8 or 16 bytes ----

template <int Bytes>
struct RawVector;
template <>
struct RawVector<16> {
  typedef uint4 type;
};
template <>
struct RawVector<8> {
  typedef uint2 type;
};
template <>
struct RawVector<4> {
  typedef unsigned int type;
};
template <>
struct RawVector<2> {
  typedef unsigned short type;
};

// The raw vector of N elements of E (at most 16 bytes).
template <class E, int N>
using raw_t = typename RawVector<N * E::kBytes>::type;

// Widens the N elements of E in one raw vector to f32, in memory order.
template <class E, int N>
__device__ __forceinline__ void widen_raw(const raw_t<E, N>& raw, float* out) {
  constexpr int kBytes = N * E::kBytes;
  if constexpr (kBytes == 2) {
    out[0] = E::widen(raw);
  } else {
    const unsigned int* words = reinterpret_cast<const unsigned int*>(&raw);
#pragma unroll
    for (int w = 0; w < kBytes / 4; ++w) {
      if constexpr (E::kBytes == 4) {
        out[w] = E::widen(words[w]);
      } else {
        out[2 * w] = E::widen(static_cast<unsigned short>(words[w] & 0xffffu));
        out[2 * w + 1] = E::widen(static_cast<unsigned short>(words[w] >> 16));
      }
    }
  }
}

// Rounds N f32 values to E and packs them into one raw vector, in memory order.
template <class E, int N>
__device__ __forceinline__ raw_t<E, N> narrow_raw(const float* in) {
  constexpr int kBytes = N * E::kBytes;
  raw_t<E, N> raw;
  if constexpr (kBytes == 2) {
    raw = E::narrow(in[0]);
  } else {
    unsigned int* words = reinterpret_cast<unsigned int*>(&raw);
#pragma unroll
    for (int w = 0; w < kBytes / 4; ++w) {
      if constexpr (E::kBytes == 4) {
        words[w] = E::narrow(in[w]);
      } else {
        words[w] = static_cast<unsigned int>(E::narrow(in[2 * w])) |
                   (static_cast<unsigned int>(E::narrow(in[2 * w + 1])) << 16);
      }
    }
  }
  return raw;
}

// N elements of E move in accesses of at most 16 bytes: one access of N * E::kBytes bytes, which
// must divide the address, or for 32 bytes (8 f32 values) two 16-byte accesses, each 16-byte
// aligned.
template <class E, int N>
constexpr int kPieceElements = N* E::kBytes > 16 ? 16 / E::kBytes : N;

// Loads N consecutive elements of E at element `offset` of `base` and widens them.
template <class E, int N>
__device__ __forceinline__ void load_vector(const void* base, long long offset, float* out) {
  constexpr int kPiece = kPieceElements<E, N>;
  const char* address = static_cast<const char*>(base) + offset * E::kBytes;
#pragma unroll
  for (int piece = 0; piece < N / kPiece; ++piece) {
    widen_raw<E, kPiece>(
        *reinterpret_cast<const raw_t<E, kPiece>*>(address + piece * kPiece * E::kBytes),
        out + piece * kPiece);
  }
}

// Rounds N f32 values to E and stores them at element `offset` of `base`.
template <class E, int N>
__device__ __forceinline__ void store_vector(void* base, long long offset, const float* in) {
  constexpr int kPiece = kPieceElements<E, N>;
  char* address = static_cast<char*>(base) + offset * E::kBytes;
#pragma unroll
  for (int piece = 0; piece < N / kPiece; ++piece) {
    *reinterpret_cast<raw_t<E, kPiece>*>(address + piece * kPiece * E::kBytes) =
        narrow_raw<E, kPiece>(in + piece * kPiece);
  }
}

// ---- L2 evict-first accesses (sm_80 and newer), for data a kernel reads exactly once: its lines
// are the first to leave L2, so they recycle the tensors' own lines instead of evicting other
// dirty data, whose write-back would share DRAM with the reads ----

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
__device__ __forceinline__ unsigned long long evict_first_policy() {
  unsigned long long policy;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// The raw vector of `Bytes` bytes (16, 8, 4 or 2) at global `address`.
template <int Bytes>
__device__ __forceinline__ typename RawVector<Bytes>::type load_raw_evict_first(
    const char* address) {
  typename RawVector<Bytes>::type raw;
  if constexpr (Bytes == 16) {
    asm volatile("ld.global.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(raw.x), "=r"(raw.y), "=r"(raw.z), "=r"(raw.w)
                 : "l"(address), "l"(evict_first_policy()));
  } else if constexpr (Bytes == 8) {
    asm volatile("ld.global.L2::cache_hint.v2.u32 {%0, %1}, [%2], %3;"
                 : "=r"(raw.x), "=r"(raw.y)
                 : "l"(address), "l"(evict_first_policy()));
  } else if constexpr (Bytes == 4) {
    asm volatile("ld.global.L2::cache_hint.u32 %0, [%1], %2;"
                 : "=r"(raw)
                 : "l"(address), "l"(evict_first_policy()));
  } else {
    asm volatile("ld.global.L2::cache_hint.u16 %0, [%1], %2;"
                 : "=h"(raw)
                 : "l"(address), "l"(evict_first_policy()));
  }
  return raw;
}

// Starts an asynchronous copy (cp.async) of `Bytes` bytes (16, 8 or 4) from global `source` to
// shared `target`; where `inside` is false it reads nothing (`source` must still be a valid
// address) and fills `target` with zeros.
template <int Bytes>
__device__ __forceinline__ void copy_async_evict_first(void* target, const char* source,
                                                       bool inside) {
  const auto address = static_cast<unsigned int>(__cvta_generic_to_shared(target));
  const unsigned int source_bytes = inside ? Bytes : 0;
  if constexpr (Bytes == 16) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;" ::"r"(address),
                 "l"(source), "r"(source_bytes), "l"(evict_first_policy())
                 : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global.L2::cache_hint [%0], [%1], %2, %3, %4;" ::"r"(address),
                 "l"(source), "n"(Bytes), "r"(source_bytes), "l"(evict_first_policy())
                 : "memory");
  }
}
#endif

}  // namespace l2norm_kernels

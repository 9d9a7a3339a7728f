// Storage types and exact conversions. f16 and bf16 are raw 16-bit patterns: NVRTC sees no toolkit
// headers, and the PTX conversions below are the exact round-to-nearest-even ones (NaN stays NaN,
// subnormals are kept).
#pragma once

#include "l2_norm_policy.cuh"

#if L2NORM_DTYPE == L2NORM_DTYPE_F32
#define L2NORM_ELEMENT_BYTES 4
#else
#define L2NORM_ELEMENT_BYTES 2
#endif

namespace l2norm_kernels {

constexpr int kElementBytes = L2NORM_ELEMENT_BYTES;
// Elements per vector access; L2NORM_VEC_BYTES is 16 for the aligned variants.
constexpr int kVec = L2NORM_VEC_BYTES / L2NORM_ELEMENT_BYTES;

__device__ __forceinline__ float half_bits_to_float(unsigned short bits) {
#if L2NORM_DTYPE == L2NORM_DTYPE_F16
  float value;
  asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
  return value;
#else
  return __uint_as_float(static_cast<unsigned int>(bits) << 16);
#endif
}

__device__ __forceinline__ unsigned short float_to_half_bits(float value) {
  unsigned short bits;
#if L2NORM_DTYPE == L2NORM_DTYPE_F16
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
#else
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
#endif
  return bits;
}

// Rounds to the storage type and back: the value a store followed by a load would give.
__device__ __forceinline__ float round_to_storage(float value) {
#if L2NORM_DTYPE == L2NORM_DTYPE_F32
  return value;
#else
  return half_bits_to_float(float_to_half_bits(value));
#endif
}

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

typedef RawVector<L2NORM_VEC_BYTES>::type raw_vector_t;

// Widens one raw vector of kVec stored elements to f32.
__device__ __forceinline__ void widen_vector(const raw_vector_t& raw, float* out) {
#if L2NORM_VEC_BYTES == 2
  out[0] = half_bits_to_float(raw);
#else
  {
    constexpr int kWords = L2NORM_VEC_BYTES / 4;
    const unsigned int* words = reinterpret_cast<const unsigned int*>(&raw);
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
#if L2NORM_DTYPE == L2NORM_DTYPE_F32
      out[w] = __uint_as_float(words[w]);
#else
      out[2 * w] = half_bits_to_float(static_cast<unsigned short>(words[w] & 0xffffu));
      out[2 * w + 1] = half_bits_to_float(static_cast<unsigned short>(words[w] >> 16));
#endif
    }
  }
#endif
}

// Loads kVec consecutive elements starting at element `offset` (a multiple of kVec) and widens
// them.
__device__ __forceinline__ void load_vector(const void* base, long long offset, float* out) {
  widen_vector(*reinterpret_cast<const raw_vector_t*>(static_cast<const char*>(base) +
                                                      offset * kElementBytes),
               out);
}

// Rounds kVec f32 values to the storage type and stores them at element `offset`.
__device__ __forceinline__ void store_vector(void* base, long long offset, const float* in) {
  raw_vector_t raw;
#if L2NORM_VEC_BYTES == 2
  raw = float_to_half_bits(in[0]);
#else
  {
    constexpr int kWords = L2NORM_VEC_BYTES / 4;
    unsigned int* words = reinterpret_cast<unsigned int*>(&raw);
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
#if L2NORM_DTYPE == L2NORM_DTYPE_F32
      words[w] = __float_as_uint(in[w]);
#else
      words[w] = static_cast<unsigned int>(float_to_half_bits(in[2 * w])) |
                 (static_cast<unsigned int>(float_to_half_bits(in[2 * w + 1])) << 16);
#endif
    }
  }
#endif
  *reinterpret_cast<raw_vector_t*>(static_cast<char*>(base) + offset * kElementBytes) = raw;
}

// ---- Typed access: the dtype is a template argument (an L2NORM_DTYPE_* code) rather than the
// L2NORM_DTYPE define, for kernels whose tensors each have their own dtype (the backward op). The
// conversions are the ones above: exact widening, round to nearest even, NaN kept. ----

template <int Dtype>
__device__ __forceinline__ constexpr int dtype_bytes() {
  return Dtype == L2NORM_DTYPE_F32 ? 4 : 2;
}

template <int Dtype>
__device__ __forceinline__ float bits16_to_float(unsigned short bits) {
  if constexpr (Dtype == L2NORM_DTYPE_F16) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
  } else {
    return __uint_as_float(static_cast<unsigned int>(bits) << 16);
  }
}

template <int Dtype>
__device__ __forceinline__ unsigned short float_to_bits16(float value) {
  unsigned short bits;
  if constexpr (Dtype == L2NORM_DTYPE_F16) {
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
  } else {
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
  }
  return bits;
}

// Loads `Elements` consecutive elements of dtype `Dtype` at element `offset` of `base` (one
// access of Elements * dtype_bytes bytes, which must divide the address) and widens them.
template <int Dtype, int Elements>
__device__ __forceinline__ void load_typed(const void* base, long long offset, float* out) {
  constexpr int kBytes = Elements * dtype_bytes<Dtype>();
  typedef typename RawVector<kBytes>::type raw_t;
  const raw_t raw = *reinterpret_cast<const raw_t*>(static_cast<const char*>(base) +
                                                    offset * dtype_bytes<Dtype>());
  if constexpr (kBytes == 2) {
    out[0] = bits16_to_float<Dtype>(raw);
  } else {
    const unsigned int* words = reinterpret_cast<const unsigned int*>(&raw);
#pragma unroll
    for (int w = 0; w < kBytes / 4; ++w) {
      if constexpr (Dtype == L2NORM_DTYPE_F32) {
        out[w] = __uint_as_float(words[w]);
      } else {
        out[2 * w] = bits16_to_float<Dtype>(static_cast<unsigned short>(words[w] & 0xffffu));
        out[2 * w + 1] = bits16_to_float<Dtype>(static_cast<unsigned short>(words[w] >> 16));
      }
    }
  }
}

// Rounds `Elements` f32 values to dtype `Dtype` and stores them at element `offset` of `base`.
template <int Dtype, int Elements>
__device__ __forceinline__ void store_typed(void* base, long long offset, const float* in) {
  constexpr int kBytes = Elements * dtype_bytes<Dtype>();
  typedef typename RawVector<kBytes>::type raw_t;
  raw_t raw;
  if constexpr (kBytes == 2) {
    raw = float_to_bits16<Dtype>(in[0]);
  } else {
    unsigned int* words = reinterpret_cast<unsigned int*>(&raw);
#pragma unroll
    for (int w = 0; w < kBytes / 4; ++w) {
      if constexpr (Dtype == L2NORM_DTYPE_F32) {
        words[w] = __float_as_uint(in[w]);
      } else {
        words[w] = static_cast<unsigned int>(float_to_bits16<Dtype>(in[2 * w])) |
                   (static_cast<unsigned int>(float_to_bits16<Dtype>(in[2 * w + 1])) << 16);
      }
    }
  }
  *reinterpret_cast<raw_t*>(static_cast<char*>(base) + offset * dtype_bytes<Dtype>()) = raw;
}

}  // namespace l2norm_kernels

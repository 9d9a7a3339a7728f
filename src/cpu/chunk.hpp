// The CPU kernels' unit of data: a 64-byte chunk (one cache line), 16 f32 or 32 f16/bf16
// elements. Loads and stores move whole chunks or the first part of one; widening turns a chunk
// into f32 vectors of 16 lanes and narrowing turns them back, lane by lane through the formulas of
// l2norm/dtype.hpp, so the vector and the scalar conversions are one implementation.
//
// A 16-bit chunk widens to two vectors, its even and its odd elements (the low and the high halves
// of its 32-bit lanes), which needs no lane shuffles. Code that sums over a chunk sees that order.
//
// Every function here is inline and meant to be flattened into an L2NORM_CPU_KERNEL function, so
// each instruction-set clone gets its own copy. Files that include this header are built with
// -ffp-contract=off (rounding must not depend on the clone) and -Wno-psabi (the 64-byte vector
// types cross only these inlined calls, never a real call between clones).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "l2norm/dtype.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__) && !defined(__clang__)
// AVX-512 and AVX2 clones for speed, a baseline x86-64 one for portability; ifunc picks at load.
#define L2NORM_CPU_KERNEL \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#else
// Clang refuses flatten on multiversioned functions: its builds (the fuzzers) get the baseline.
#define L2NORM_CPU_KERNEL __attribute__((flatten))
#endif

namespace l2norm::detail::cpu {

constexpr std::int64_t kLanes = 16;
constexpr std::int64_t kChunkBytes = 64;

using F32x16 = float __attribute__((vector_size(64)));
using U32x16 = std::uint32_t __attribute__((vector_size(64)));

template <DType T>
struct Storage;
template <>
struct Storage<DType::f32> {
  using Element = float;
  using Raw = F32x16;  // one chunk as loaded
};
template <>
struct Storage<DType::f16> {
  using Element = std::uint16_t;
  using Raw = U32x16;  // lane i holds elements 2i (low half) and 2i+1 (high half)
};
template <>
struct Storage<DType::bf16> {
  using Element = std::uint16_t;
  using Raw = U32x16;
};
template <DType T>
using ElementOf = typename Storage<T>::Element;
template <DType T>
using RawOf = typename Storage<T>::Raw;

template <DType T>
inline constexpr std::int64_t kChunkElements = kChunkBytes / std::int64_t(sizeof(ElementOf<T>));
// f32 vectors per chunk: a 16-bit chunk widens to its even and its odd elements.
template <DType T>
inline constexpr int kVectorsPerChunk = int(kChunkElements<T> / kLanes);

// A chunk in f32: vectors[k][i] is element i * kVectorsPerChunk + k of the chunk.
template <DType T>
struct Widened {
  F32x16 vectors[kVectorsPerChunk<T>];
};

template <DType T>
inline Widened<T> operator*(const Widened<T>& values, float factor) {
  Widened<T> product;
  for (int k = 0; k < kVectorsPerChunk<T>; ++k) product.vectors[k] = values.vectors[k] * factor;
  return product;
}

// ---- conversions; exact, and bit for bit the scalar functions of l2norm/dtype.hpp ----

template <DType T>
inline Widened<T> widen(const RawOf<T>& raw) {
  if constexpr (T == DType::f32) {
    return {{raw}};
  } else if constexpr (T == DType::f16) {
    return {{l2norm::detail::f16_lanes_to_f32<F32x16>(raw & 0xffffu),
             l2norm::detail::f16_lanes_to_f32<F32x16>(raw >> 16)}};
  } else {
    return {{l2norm::detail::bf16_lanes_to_f32<F32x16>(raw & 0xffffu),
             l2norm::detail::bf16_lanes_to_f32<F32x16>(raw >> 16)}};
  }
}

// Rounds to nearest even. kMayBeNaN = false leaves out the NaN case (exact for every other value),
// for callers that know their values are not NaN.
template <DType T, bool kMayBeNaN>
inline RawOf<T> narrow(const Widened<T>& values) {
  if constexpr (T == DType::f32) {
    return values.vectors[0];
  } else if constexpr (T == DType::f16) {
    return l2norm::detail::f32_to_f16_lanes<U32x16, kMayBeNaN>(values.vectors[0]) |
           (l2norm::detail::f32_to_f16_lanes<U32x16, kMayBeNaN>(values.vectors[1]) << 16);
  } else {
    return l2norm::detail::f32_to_bf16_lanes<U32x16, kMayBeNaN>(values.vectors[0]) |
           (l2norm::detail::f32_to_bf16_lanes<U32x16, kMayBeNaN>(values.vectors[1]) << 16);
  }
}

// The same chunk in element order: vectors[k][i] is element k * kLanes + i. A 16-bit chunk's even
// and odd vectors are interleaved lane by lane, so chunks of different dtypes pair up element by
// element (the backward op reads dy, y and dx of any three dtypes together).
template <DType T>
inline Widened<T> widen_in_order(const RawOf<T>& raw) {
  if constexpr (T == DType::f32) {
    return {{raw}};
  } else {
    const Widened<T> split = widen<T>(raw);
    const F32x16& even = split.vectors[0];
    const F32x16& odd = split.vectors[1];
    return {
        {__builtin_shufflevector(even, odd, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
         __builtin_shufflevector(even, odd, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                 15, 31)}};
  }
}

// The inverse of widen_in_order: rounds values in element order to one chunk of T.
template <DType T, bool kMayBeNaN>
inline RawOf<T> narrow_in_order(const Widened<T>& values) {
  if constexpr (T == DType::f32) {
    return values.vectors[0];
  } else {
    const F32x16& low = values.vectors[0];
    const F32x16& high = values.vectors[1];
    const Widened<T> split{{__builtin_shufflevector(low, high, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18,
                                                    20, 22, 24, 26, 28, 30),
                            __builtin_shufflevector(low, high, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19,
                                                    21, 23, 25, 27, 29, 31)}};
    return narrow<T, kMayBeNaN>(split);
  }
}

template <DType T>
inline float widen_scalar(ElementOf<T> element) {
  if constexpr (T == DType::f32) return element;
  if constexpr (T == DType::f16) return f16_bits_to_f32(element);
  if constexpr (T == DType::bf16) return bf16_bits_to_f32(element);
}

template <DType T>
inline ElementOf<T> narrow_scalar(float value) {
  if constexpr (T == DType::f32) return value;
  if constexpr (T == DType::f16) return f32_to_f16_bits(value);
  if constexpr (T == DType::bf16) return f32_to_bf16_bits(value);
}

// ---- loads and stores of one chunk; pointers need only element alignment ----

template <DType T>
inline RawOf<T> load(const ElementOf<T>* source) {
  RawOf<T> raw;
  std::memcpy(&raw, source, sizeof raw);
  return raw;
}

// The first `count` (< one chunk) elements; the rest of the chunk is zero.
template <DType T>
inline RawOf<T> load_partial(const ElementOf<T>* source, std::int64_t count) {
  RawOf<T> raw{};
  std::memcpy(&raw, source, static_cast<std::size_t>(count) * sizeof(ElementOf<T>));
  return raw;
}

// The first `count` (1 to one chunk) elements, the rest of the chunk zero.
template <DType T>
inline RawOf<T> load_up_to(const ElementOf<T>* source, std::int64_t count) {
  return count == kChunkElements<T> ? load<T>(source) : load_partial<T>(source, count);
}

template <DType T>
inline void store(ElementOf<T>* destination, const RawOf<T>& raw) {
  std::memcpy(destination, &raw, sizeof raw);
}

template <DType T>
inline void store_partial(ElementOf<T>* destination, const RawOf<T>& raw, std::int64_t count) {
  std::memcpy(destination, &raw, static_cast<std::size_t>(count) * sizeof(ElementOf<T>));
}

// Non-temporal store of one chunk to a 64-byte aligned address: the line goes to memory without
// being read first, so a large output costs one write instead of a read and a write.
template <DType T>
inline void store_streaming(ElementOf<T>* destination, const RawOf<T>& raw) {
#if defined(__x86_64__)
  constexpr std::size_t kPieces = sizeof(RawOf<T>) / sizeof(__m128i);
  __m128i pieces[kPieces];
  std::memcpy(pieces, &raw, sizeof raw);
  auto* target = reinterpret_cast<__m128i*>(destination);
  for (std::size_t i = 0; i < kPieces; ++i) _mm_stream_si128(target + i, pieces[i]);
#else
  store<T>(destination, raw);
#endif
}

// Streaming stores are weakly ordered: this makes those issued so far visible before any later
// store (such as the thread pool's report that a part is done).
inline void order_streaming_stores() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

}  // namespace l2norm::detail::cpu

// The CPU kernels' unit of data: a 64-byte chunk (one cache line), 16 f32 or 32 f16/bf16
// elements. Loads and stores move whole chunks or the first part of one; widening turns a chunk
// into f32 vectors of 16 lanes and narrowing turns them back, bit for bit as the formulas of
// l2norm/dtype.hpp convert one value. f32 and bf16 go through those formulas lane by lane; f16
// goes through the F16C (x86-64-v3) or AVX-512 (x86-64-v4) conversion instructions where the
// kernel's instruction set has them, which give the same bits but for one case: they widen a
// signaling NaN to a quiet one (see "f16 conversions" below).
//
// A 16-bit chunk widens to two vectors, its even and its odd elements (the low and the high halves
// of its 32-bit lanes). Code that sums over a chunk sees that order.
//
// Every function here is inline and meant to be flattened into an L2NORM_CPU_KERNEL function, so
// each instruction-set version of a kernel gets its own copy. Files that include this header are
// built with -ffp-contract=off (rounding must not depend on the instruction set) and -Wno-psabi
// (the 64-byte vector types cross only these inlined calls, never a real call between versions).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "l2norm/dtype.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// L2NORM_CPU_KERNEL(void name(parameters), { body }) defines a kernel function, with every call
// inside it inlined (flatten).
//
// With GCC on x86-64 the kernel is defined once per instruction set, AVX-512 (x86-64-v4), AVX2
// with F16C (x86-64-v3) and baseline x86-64, and ifunc picks one at load (C++ function
// multiversioning by `target` attribute). The f16 conversion helpers below are multiversioned the
// same way, and GCC calls from each kernel version straight into the helper version of the same
// instruction set, which flatten then inlines. (target_clones cannot do that: its clones share one
// body, and their calls to a multiversioned helper go through the helper's ifunc.)
// L2NORM_CPU_ONLY_ISA (0 baseline, 3 x86-64-v3, 4 x86-64-v4), which the tests comparing the
// instruction sets set, gives the one version of that instruction set instead. Clang refuses
// flatten on multiversioned functions: its builds (the fuzzers) get one baseline version, as do
// other architectures.
#if defined(__x86_64__) && !defined(__clang__)
#define L2NORM_CPU_X86_ISAS 1
// A function built for one instruction set. flatten: a 64-byte vector passed by value between
// functions of different instruction sets would cross two calling conventions, so no call inside
// one may stay a call.
#define L2NORM_CPU_TARGET_V4 __attribute__((target("arch=x86-64-v4"), flatten))
#define L2NORM_CPU_TARGET_V3 __attribute__((target("arch=x86-64-v3"), flatten))
#define L2NORM_CPU_TARGET_BASELINE __attribute__((target("default"), flatten))
#else
#define L2NORM_CPU_X86_ISAS 0
#endif

#if L2NORM_CPU_X86_ISAS && !defined(L2NORM_CPU_ONLY_ISA)
#define L2NORM_CPU_MULTIVERSIONED 1
#define L2NORM_CPU_KERNEL(declaration, ...)                                                 \
  L2NORM_CPU_TARGET_V4 declaration __VA_ARGS__ L2NORM_CPU_TARGET_V3 declaration __VA_ARGS__ \
      L2NORM_CPU_TARGET_BASELINE declaration __VA_ARGS__
#else
#define L2NORM_CPU_MULTIVERSIONED 0
#if L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 4
#define L2NORM_CPU_KERNEL(declaration, ...) L2NORM_CPU_TARGET_V4 declaration __VA_ARGS__
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 3
#define L2NORM_CPU_KERNEL(declaration, ...) L2NORM_CPU_TARGET_V3 declaration __VA_ARGS__
#else
#define L2NORM_CPU_KERNEL(declaration, ...) __attribute__((flatten)) declaration __VA_ARGS__
#endif
#endif

namespace l2norm::detail::cpu {

constexpr std::int64_t kLanes = 16;
constexpr std::int64_t kChunkBytes = 64;

using F32x16 = float __attribute__((vector_size(64)));
using U32x16 = std::uint32_t __attribute__((vector_size(64)));
using U16x32 = std::uint16_t __attribute__((vector_size(64)));
using U16x16 = std::uint16_t __attribute__((vector_size(32)));

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

// ---- f16 conversions ----
//
// Three implementations of one chunk's widening and rounding, with the same results bit for bit
// (tests/cpu/f16_conversion_test.cpp holds them to it over every f16 pattern and every f32 one):
// - software: the formulas of l2norm/dtype.hpp in 16 lanes;
// - F16C (x86-64-v3): vcvtph2ps / vcvtps2ph on 8 lanes, with AVX2 shuffles between the chunk's
//   interleaved layout and the packed one the instructions read and write;
// - AVX-512 (x86-64-v4): the 16-lane forms, with one word permute each way.
// The instructions convert exactly; rounding uses imm8 0 (to nearest even, whatever MXCSR says),
// gives subnormal results and overflows to Inf as the formula does, and keeps a NaN's sign and
// the top 9 bits of its payload with the quiet bit set, as the formula does. Widening differs in
// one case: vcvtph2ps quiets a signaling NaN (as IEEE 754 conversions do), where the formula keeps
// the pattern as a signaling f32 NaN. The kernels never store a widened value without arithmetic
// on it, which quiets a NaN anyway, so their outputs are the same bits in every version
// (tests/cpu/golden_output_test.cpp, with signaling NaNs among its inputs).

namespace f16_convert {

using Halves = Widened<DType::f16>;

inline Halves widen_software(const U32x16& raw) {
  return {{l2norm::detail::f16_lanes_to_f32<F32x16>(raw & 0xffffu),
           l2norm::detail::f16_lanes_to_f32<F32x16>(raw >> 16)}};
}

template <bool kMayBeNaN>
inline U32x16 narrow_software(const Halves& values) {
  return l2norm::detail::f32_to_f16_lanes<U32x16, kMayBeNaN>(values.vectors[0]) |
         (l2norm::detail::f32_to_f16_lanes<U32x16, kMayBeNaN>(values.vectors[1]) << 16);
}

#if L2NORM_CPU_X86_ISAS

L2NORM_CPU_TARGET_V3 inline Halves widen_f16c(const U32x16& raw) {
  __m256i halves[2];  // lanes 0-7 and 8-15 of the chunk
  std::memcpy(halves, &raw, sizeof raw);
  // In each 128-bit lane, the even elements to the low 8 bytes and the odd ones to the high 8.
  const __m256i split_lanes =
      _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12,
                       13, 2, 3, 6, 7, 10, 11, 14, 15);
  __m256 even[2];
  __m256 odd[2];
  for (int half = 0; half < 2; ++half) {
    // [e0-3 o0-3 | e4-7 o4-7] -> [e0-7 | o0-7]
    const __m256i split =
        _mm256_permute4x64_epi64(_mm256_shuffle_epi8(halves[half], split_lanes), 0xd8);
    even[half] = _mm256_cvtph_ps(_mm256_castsi256_si128(split));
    odd[half] = _mm256_cvtph_ps(_mm256_extracti128_si256(split, 1));
  }
  Halves values;
  std::memcpy(&values.vectors[0], even, sizeof even);
  std::memcpy(&values.vectors[1], odd, sizeof odd);
  return values;
}

L2NORM_CPU_TARGET_V3 inline U32x16 narrow_f16c(const Halves& values) {
  __m256 even[2];
  __m256 odd[2];
  std::memcpy(even, &values.vectors[0], sizeof even);
  std::memcpy(odd, &values.vectors[1], sizeof odd);
  __m256i halves[2];
  for (int half = 0; half < 2; ++half) {
    const __m128i e = _mm256_cvtps_ph(even[half], _MM_FROUND_TO_NEAREST_INT);
    const __m128i o = _mm256_cvtps_ph(odd[half], _MM_FROUND_TO_NEAREST_INT);
    halves[half] = _mm256_set_m128i(_mm_unpackhi_epi16(e, o), _mm_unpacklo_epi16(e, o));
  }
  U32x16 raw;
  std::memcpy(&raw, halves, sizeof raw);
  return raw;
}

// All-lanes masks: the conversions use the masked (zeroing) forms of their intrinsics, because
// GCC 12's unmasked ones fill their unused source from _mm512_undefined_*(), which -Wuninitialized
// reports.
constexpr __mmask16 kAll16 = 0xffff;

L2NORM_CPU_TARGET_V4 inline Halves widen_avx512(const U32x16& raw) {
  const auto words = std::bit_cast<U16x32>(raw);
  const U16x16 even = __builtin_shufflevector(words, words, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                              22, 24, 26, 28, 30);
  const U16x16 odd = __builtin_shufflevector(words, words, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                             23, 25, 27, 29, 31);
  return {{std::bit_cast<F32x16>(_mm512_maskz_cvtph_ps(kAll16, std::bit_cast<__m256i>(even))),
           std::bit_cast<F32x16>(_mm512_maskz_cvtph_ps(kAll16, std::bit_cast<__m256i>(odd)))}};
}

L2NORM_CPU_TARGET_V4 inline U32x16 narrow_avx512(const Halves& values) {
  const auto even = std::bit_cast<U16x16>(_mm512_maskz_cvtps_ph(
      kAll16, std::bit_cast<__m512>(values.vectors[0]), _MM_FROUND_TO_NEAREST_INT));
  const auto odd = std::bit_cast<U16x16>(_mm512_maskz_cvtps_ph(
      kAll16, std::bit_cast<__m512>(values.vectors[1]), _MM_FROUND_TO_NEAREST_INT));
  const U16x32 words =
      __builtin_shufflevector(even, odd, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8,
                              24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  return std::bit_cast<U32x16>(words);
}

#endif  // L2NORM_CPU_X86_ISAS

// widen(raw) and narrow(values, may_be_nan): the implementation of the calling kernel's
// instruction set. Multiversioned like the kernels; elsewhere the one version the build has.
#if L2NORM_CPU_MULTIVERSIONED
L2NORM_CPU_TARGET_BASELINE inline Halves widen(const U32x16& raw) {
  return widen_software(raw);
}
L2NORM_CPU_TARGET_V3 inline Halves widen(const U32x16& raw) {
  return widen_f16c(raw);
}
L2NORM_CPU_TARGET_V4 inline Halves widen(const U32x16& raw) {
  return widen_avx512(raw);
}
L2NORM_CPU_TARGET_BASELINE inline U32x16 narrow(const Halves& values, bool may_be_nan) {
  return may_be_nan ? narrow_software<true>(values) : narrow_software<false>(values);
}
L2NORM_CPU_TARGET_V3 inline U32x16 narrow(const Halves& values, bool) {
  return narrow_f16c(values);
}
L2NORM_CPU_TARGET_V4 inline U32x16 narrow(const Halves& values, bool) {
  return narrow_avx512(values);
}
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 4
L2NORM_CPU_TARGET_V4 inline Halves widen(const U32x16& raw) {
  return widen_avx512(raw);
}
L2NORM_CPU_TARGET_V4 inline U32x16 narrow(const Halves& values, bool) {
  return narrow_avx512(values);
}
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 3
L2NORM_CPU_TARGET_V3 inline Halves widen(const U32x16& raw) {
  return widen_f16c(raw);
}
L2NORM_CPU_TARGET_V3 inline U32x16 narrow(const Halves& values, bool) {
  return narrow_f16c(values);
}
#else
inline Halves widen(const U32x16& raw) {
  return widen_software(raw);
}
inline U32x16 narrow(const Halves& values, bool may_be_nan) {
  return may_be_nan ? narrow_software<true>(values) : narrow_software<false>(values);
}
#endif

}  // namespace f16_convert

// ---- conversions; exact, and bit for bit the scalar functions of l2norm/dtype.hpp ----

// Exact. A NaN stays a NaN with its sign and payload; an f16 signaling NaN comes back quiet in the
// F16C and AVX-512 versions, as it is in the formula's once any arithmetic touches it.
template <DType T>
inline Widened<T> widen(const RawOf<T>& raw) {
  if constexpr (T == DType::f32) {
    return {{raw}};
  } else if constexpr (T == DType::f16) {
    return f16_convert::widen(raw);
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
    return f16_convert::narrow(values, kMayBeNaN);
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

// ---- partial chunks: the first `bytes` (an even number below 64) bytes of a line ----
// A row that is not whole chunks begins or ends with one. They are moved with masked instructions
// where the instruction set has them (AVX-512BW: bytes; AVX2: 32-bit words and a 16-bit tail),
// which touch no byte past `bytes` (masked-off elements neither load, store nor fault), and with
// memcpy elsewhere: the same bytes, without a call per partial chunk.
namespace partial {

inline U32x16 load_bytes_memcpy(const void* source, std::size_t bytes) {
  U32x16 raw{};
  std::memcpy(&raw, source, bytes);
  return raw;
}

inline void store_bytes_memcpy(void* destination, const U32x16& raw, std::size_t bytes) {
  std::memcpy(destination, &raw, bytes);
}

// The line-joining pair (LineJoiner, cpu/row_math.hpp). place_bytes: `line` with its bytes
// [offset, offset + bytes) replaced by the first `bytes` bytes of `raw` (offset and bytes even,
// offset + bytes <= 64). store_line_bytes: bytes [begin, end) of `line` stored to the same bytes
// of the 64-byte aligned `destination`, no other byte written.
inline U32x16 place_bytes_memcpy(const U32x16& line, const U32x16& raw, std::size_t offset,
                                 std::size_t bytes) {
  unsigned char buffer[sizeof(U32x16)];
  std::memcpy(buffer, &line, sizeof buffer);
  std::memcpy(buffer + offset, &raw, bytes);
  U32x16 placed;
  std::memcpy(&placed, buffer, sizeof placed);
  return placed;
}

inline void store_line_bytes_memcpy(void* destination, const U32x16& line, std::size_t begin,
                                    std::size_t end) {
  unsigned char buffer[sizeof(U32x16)];
  std::memcpy(buffer, &line, sizeof buffer);
  std::memcpy(static_cast<unsigned char*>(destination) + begin, buffer + begin, end - begin);
}

#if L2NORM_CPU_X86_ISAS
// Lanes below `words` of the 8-lane half starting at lane `first`, as an AVX2 mask.
L2NORM_CPU_TARGET_V3 inline __m256i word_mask(std::size_t words, int first) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(words) - first), lanes);
}

L2NORM_CPU_TARGET_V3 inline U32x16 load_bytes_avx2(const void* source, std::size_t bytes) {
  const std::size_t words = bytes / 4;
  const auto* from = static_cast<const int*>(source);
  const __m256i halves[2] = {_mm256_maskload_epi32(from, word_mask(words, 0)),
                             _mm256_maskload_epi32(from + 8, word_mask(words, 8))};
  U32x16 raw;
  std::memcpy(&raw, halves, sizeof raw);
  if (bytes % 4 != 0) {
    std::uint16_t tail;
    std::memcpy(&tail, static_cast<const char*>(source) + words * 4, sizeof tail);
    raw[words] = tail;
  }
  return raw;
}

L2NORM_CPU_TARGET_V3 inline void store_bytes_avx2(void* destination, const U32x16& raw,
                                                  std::size_t bytes) {
  const std::size_t words = bytes / 4;
  __m256i halves[2];
  std::memcpy(halves, &raw, sizeof raw);
  auto* to = static_cast<int*>(destination);
  _mm256_maskstore_epi32(to, word_mask(words, 0), halves[0]);
  _mm256_maskstore_epi32(to + 8, word_mask(words, 8), halves[1]);
  if (bytes % 4 != 0) {
    const auto tail = static_cast<std::uint16_t>(raw[words]);
    std::memcpy(static_cast<char*>(destination) + words * 4, &tail, sizeof tail);
  }
}

L2NORM_CPU_TARGET_V4 inline U32x16 load_bytes_avx512(const void* source, std::size_t bytes) {
  const __mmask64 mask = _bzhi_u64(~std::uint64_t{0}, static_cast<unsigned>(bytes));
  return std::bit_cast<U32x16>(_mm512_maskz_loadu_epi8(mask, source));
}

// A masked store whose 64 bytes reach into a cache line that none of the stored bytes is in
// still takes that line on some CPUs (AMD Zen 4), and a non-temporal store to that line then
// waits for it: a row's partial head store would stall the next row's streamed lines. So bytes
// that lie in one cache line are stored from that line's start, moved up to their place
// (a 16-bit lane rotation: every dtype is whole 16-bit words), and the store touches that line
// alone.
L2NORM_CPU_TARGET_V4 inline void store_bytes_avx512(void* destination, const U32x16& raw,
                                                    std::size_t bytes) {
  const auto address = reinterpret_cast<std::uintptr_t>(destination);
  const auto offset = static_cast<unsigned>(address % 64);
  const __mmask64 mask = _bzhi_u64(~std::uint64_t{0}, static_cast<unsigned>(bytes));
  if (offset == 0 || offset % 2 != 0 || offset + bytes > 64) {
    _mm512_mask_storeu_epi8(destination, mask, std::bit_cast<__m512i>(raw));
    return;
  }
  // Lane w of the result is lane w - offset / 2 of raw (indices wrap modulo 32).
  const __m512i lanes = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                         16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i index = _mm512_sub_epi16(lanes, _mm512_set1_epi16(static_cast<short>(offset / 2)));
  const __m512i moved = _mm512_permutexvar_epi16(index, std::bit_cast<__m512i>(raw));
  _mm512_mask_storeu_epi8(reinterpret_cast<void*>(address - offset), mask << offset, moved);
}

// In registers: a line assembled in memory from partial stores and read back whole would wait
// for those stores (no store-to-load forwarding from several stores into one load).
L2NORM_CPU_TARGET_V4 inline U32x16 place_bytes_avx512(const U32x16& line, const U32x16& raw,
                                                      std::size_t offset, std::size_t bytes) {
  const __m512i lanes = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                         16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i index = _mm512_sub_epi16(lanes, _mm512_set1_epi16(static_cast<short>(offset / 2)));
  const __m512i moved = _mm512_permutexvar_epi16(index, std::bit_cast<__m512i>(raw));
  const __mmask64 mask = _bzhi_u64(~std::uint64_t{0}, static_cast<unsigned>(bytes)) << offset;
  return std::bit_cast<U32x16>(_mm512_mask_blend_epi8(mask, std::bit_cast<__m512i>(line), moved));
}

L2NORM_CPU_TARGET_V4 inline void store_line_bytes_avx512(void* destination, const U32x16& line,
                                                         std::size_t begin, std::size_t end) {
  const __mmask64 mask = _bzhi_u64(~std::uint64_t{0}, static_cast<unsigned>(end)) &
                         ~_bzhi_u64(~std::uint64_t{0}, static_cast<unsigned>(begin));
  _mm512_mask_storeu_epi8(destination, mask, std::bit_cast<__m512i>(line));
}
#endif

// load_bytes / store_bytes: the calling kernel's instruction set's version, multiversioned like
// store_line below.
#if L2NORM_CPU_MULTIVERSIONED
L2NORM_CPU_TARGET_BASELINE inline U32x16 load_bytes(const void* source, std::size_t bytes) {
  return load_bytes_memcpy(source, bytes);
}
L2NORM_CPU_TARGET_V3 inline U32x16 load_bytes(const void* source, std::size_t bytes) {
  return load_bytes_avx2(source, bytes);
}
L2NORM_CPU_TARGET_V4 inline U32x16 load_bytes(const void* source, std::size_t bytes) {
  return load_bytes_avx512(source, bytes);
}
L2NORM_CPU_TARGET_BASELINE inline void store_bytes(void* destination, const U32x16& raw,
                                                   std::size_t bytes) {
  store_bytes_memcpy(destination, raw, bytes);
}
L2NORM_CPU_TARGET_V3 inline void store_bytes(void* destination, const U32x16& raw,
                                             std::size_t bytes) {
  store_bytes_avx2(destination, raw, bytes);
}
L2NORM_CPU_TARGET_V4 inline void store_bytes(void* destination, const U32x16& raw,
                                             std::size_t bytes) {
  store_bytes_avx512(destination, raw, bytes);
}
L2NORM_CPU_TARGET_BASELINE inline U32x16 place_bytes(const U32x16& line, const U32x16& raw,
                                                     std::size_t offset, std::size_t bytes) {
  return place_bytes_memcpy(line, raw, offset, bytes);
}
L2NORM_CPU_TARGET_V3 inline U32x16 place_bytes(const U32x16& line, const U32x16& raw,
                                               std::size_t offset, std::size_t bytes) {
  return place_bytes_memcpy(line, raw, offset, bytes);
}
L2NORM_CPU_TARGET_V4 inline U32x16 place_bytes(const U32x16& line, const U32x16& raw,
                                               std::size_t offset, std::size_t bytes) {
  return place_bytes_avx512(line, raw, offset, bytes);
}
L2NORM_CPU_TARGET_BASELINE inline void store_line_bytes(void* destination, const U32x16& line,
                                                        std::size_t begin, std::size_t end) {
  store_line_bytes_memcpy(destination, line, begin, end);
}
L2NORM_CPU_TARGET_V3 inline void store_line_bytes(void* destination, const U32x16& line,
                                                  std::size_t begin, std::size_t end) {
  store_line_bytes_memcpy(destination, line, begin, end);
}
L2NORM_CPU_TARGET_V4 inline void store_line_bytes(void* destination, const U32x16& line,
                                                  std::size_t begin, std::size_t end) {
  store_line_bytes_avx512(destination, line, begin, end);
}
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 4
L2NORM_CPU_TARGET_V4 inline U32x16 load_bytes(const void* source, std::size_t bytes) {
  return load_bytes_avx512(source, bytes);
}
L2NORM_CPU_TARGET_V4 inline void store_bytes(void* destination, const U32x16& raw,
                                             std::size_t bytes) {
  store_bytes_avx512(destination, raw, bytes);
}
L2NORM_CPU_TARGET_V4 inline U32x16 place_bytes(const U32x16& line, const U32x16& raw,
                                               std::size_t offset, std::size_t bytes) {
  return place_bytes_avx512(line, raw, offset, bytes);
}
L2NORM_CPU_TARGET_V4 inline void store_line_bytes(void* destination, const U32x16& line,
                                                  std::size_t begin, std::size_t end) {
  store_line_bytes_avx512(destination, line, begin, end);
}
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 3
L2NORM_CPU_TARGET_V3 inline U32x16 load_bytes(const void* source, std::size_t bytes) {
  return load_bytes_avx2(source, bytes);
}
L2NORM_CPU_TARGET_V3 inline void store_bytes(void* destination, const U32x16& raw,
                                             std::size_t bytes) {
  store_bytes_avx2(destination, raw, bytes);
}
L2NORM_CPU_TARGET_V3 inline U32x16 place_bytes(const U32x16& line, const U32x16& raw,
                                               std::size_t offset, std::size_t bytes) {
  return place_bytes_memcpy(line, raw, offset, bytes);
}
L2NORM_CPU_TARGET_V3 inline void store_line_bytes(void* destination, const U32x16& line,
                                                  std::size_t begin, std::size_t end) {
  store_line_bytes_memcpy(destination, line, begin, end);
}
#else
inline U32x16 load_bytes(const void* source, std::size_t bytes) {
  return load_bytes_memcpy(source, bytes);
}
inline void store_bytes(void* destination, const U32x16& raw, std::size_t bytes) {
  store_bytes_memcpy(destination, raw, bytes);
}
inline U32x16 place_bytes(const U32x16& line, const U32x16& raw, std::size_t offset,
                          std::size_t bytes) {
  return place_bytes_memcpy(line, raw, offset, bytes);
}
inline void store_line_bytes(void* destination, const U32x16& line, std::size_t begin,
                             std::size_t end) {
  store_line_bytes_memcpy(destination, line, begin, end);
}
#endif

}  // namespace partial

// The first `count` (< one chunk) elements; the rest of the chunk is zero.
template <DType T>
inline RawOf<T> load_partial(const ElementOf<T>* source, std::int64_t count) {
  return std::bit_cast<RawOf<T>>(
      partial::load_bytes(source, static_cast<std::size_t>(count) * sizeof(ElementOf<T>)));
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
  partial::store_bytes(destination, std::bit_cast<U32x16>(raw),
                       static_cast<std::size_t>(count) * sizeof(ElementOf<T>));
}

#if defined(__x86_64__)
namespace streaming {

// The 16-byte pieces every x86-64 has.
inline void store_line_sse2(void* destination, const U32x16& line) {
  __m128i pieces[4];
  std::memcpy(pieces, &line, sizeof line);
  auto* target = static_cast<__m128i*>(destination);
  for (int i = 0; i < 4; ++i) _mm_stream_si128(target + i, pieces[i]);
}

#if L2NORM_CPU_X86_ISAS
L2NORM_CPU_TARGET_V3 inline void store_line_avx2(void* destination, const U32x16& line) {
  __m256i halves[2];
  std::memcpy(halves, &line, sizeof line);
  auto* target = static_cast<__m256i*>(destination);
  _mm256_stream_si256(target, halves[0]);
  _mm256_stream_si256(target + 1, halves[1]);
}

L2NORM_CPU_TARGET_V4 inline void store_line_avx512(void* destination, const U32x16& line) {
  _mm512_stream_si512(static_cast<__m512i*>(destination), std::bit_cast<__m512i>(line));
}
#endif

// store_line(destination, line): the widest non-temporal store of the calling kernel's instruction
// set, one instruction per line where AVX-512 has it. Multiversioned like the f16 conversions.
#if L2NORM_CPU_MULTIVERSIONED
L2NORM_CPU_TARGET_BASELINE inline void store_line(void* destination, const U32x16& line) {
  store_line_sse2(destination, line);
}
L2NORM_CPU_TARGET_V3 inline void store_line(void* destination, const U32x16& line) {
  store_line_avx2(destination, line);
}
L2NORM_CPU_TARGET_V4 inline void store_line(void* destination, const U32x16& line) {
  store_line_avx512(destination, line);
}
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 4
L2NORM_CPU_TARGET_V4 inline void store_line(void* destination, const U32x16& line) {
  store_line_avx512(destination, line);
}
#elif L2NORM_CPU_X86_ISAS && L2NORM_CPU_ONLY_ISA == 3
L2NORM_CPU_TARGET_V3 inline void store_line(void* destination, const U32x16& line) {
  store_line_avx2(destination, line);
}
#else
inline void store_line(void* destination, const U32x16& line) {
  store_line_sse2(destination, line);
}
#endif

}  // namespace streaming
#endif

// Non-temporal store of one line to a 64-byte aligned address: the line goes to memory without
// being read first, so a large output costs one write instead of a read and a write. (An ordinary
// store where the architecture has no such store here.)
inline void store_streaming_line(void* destination, const U32x16& line) {
#if defined(__x86_64__)
  streaming::store_line(destination, line);
#else
  std::memcpy(destination, &line, sizeof line);
#endif
}

template <DType T>
inline void store_streaming(ElementOf<T>* destination, const RawOf<T>& raw) {
  store_streaming_line(destination, std::bit_cast<U32x16>(raw));
}

// Streaming stores are weakly ordered: this makes those issued so far visible before any later
// store (such as the thread pool's report that a part is done).
inline void order_streaming_stores() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

}  // namespace l2norm::detail::cpu

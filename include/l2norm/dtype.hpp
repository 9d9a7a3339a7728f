// Element types and their host-side conversions. Arithmetic always happens in f32; f16 and bf16 are
// storage formats. Conversions from f32 round to nearest even, keep NaN a NaN and keep subnormals.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace l2norm {

enum class DType : std::uint8_t { f32, f16, bf16 };

constexpr std::size_t dtype_size(DType dtype) noexcept {
  return dtype == DType::f32 ? 4 : 2;
}

constexpr std::string_view dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
  }
  return "?";
}

// Accepts "f32", "f16", "bf16" and the long spellings "float32", "float16", "bfloat16".
std::optional<DType> try_parse_dtype(std::string_view text) noexcept;
// Same, but throws Error(invalid_argument) naming the text and the accepted spellings.
DType parse_dtype(std::string_view text);

// ---- conversions ----
//
// Each formula is written once, in detail::, over a "lane" type: Bits is std::uint32_t and Float
// is float for one value, or a GCC/Clang vector of them (the CPU backend converts 16 lanes at a
// time through the same templates). The bodies use only operators that both kinds of type
// support: bit operations, shifts, +, -, std::bit_cast, and ?: for selection, so every case is
// computed and the right one picked per lane. A 16-bit pattern sits in the low half of its Bits
// lane, and the narrowing formulas return it there with the high half zero.
namespace detail {

template <class Float, class Bits>
constexpr Float bf16_lanes_to_f32(Bits bits) noexcept {
  return std::bit_cast<Float>(bits << 16);
}

// kMayBeNaN = false leaves out the NaN case: exact for every other input, and cheaper where the
// caller knows its values are not NaN.
template <class Bits, bool kMayBeNaN = true, class Float>
constexpr Bits f32_to_bf16_lanes(Float value) noexcept {
  const Bits bits = std::bit_cast<Bits>(value);
  const Bits rounding_bias = 0x7fffu + ((bits >> 16) & 1u);  // ties to even
  const Bits rounded = (bits + rounding_bias) >> 16;
  if constexpr (!kMayBeNaN) return rounded;
  const Bits quiet_nan = (bits >> 16) | 0x0040u;  // sign kept
  return (bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
}

template <class Float, class Bits>
constexpr Float f16_lanes_to_f32(Bits bits) noexcept {
  const Bits sign = (bits & 0x8000u) << 16;
  const Bits exponent = (bits >> 10) & 0x1fu;
  const Bits mantissa = (bits & 0x3ffu) << 13;
  const Bits inf_or_nan = sign | 0x7f800000u | mantissa;
  const Bits normal = sign | ((exponent + 112u) << 23) | mantissa;
  // Subnormal or zero f16: the value is m * 2^-24 for the 10-bit mantissa m. Read with the
  // exponent of 2^-14, the bits are 2^-14 + m * 2^-24, and subtracting 2^-14 is exact.
  const Float magnitude = std::bit_cast<Float>(mantissa | 0x38800000u) - 0x1p-14f;
  const Bits subnormal = sign | std::bit_cast<Bits>(magnitude);
  return std::bit_cast<Float>(exponent == 0x1fu ? inf_or_nan
                                                : (exponent != 0u ? normal : subnormal));
}

template <class Bits, bool kMayBeNaN = true, class Float>
constexpr Bits f32_to_f16_lanes(Float value) noexcept {
  const Bits bits = std::bit_cast<Bits>(value);
  const Bits sign = (bits >> 16) & 0x8000u;
  const Bits magnitude = bits & 0x7fffffffu;
  const Bits infinity = sign | 0x7c00u;  // also what every value from 65520 up rounds to
  // f16 subnormal (or zero) results: adding 0.5f makes the f32 rounding quantize the value to
  // multiples of 2^-24, ties to even. Where a NaN may come in, bit 30 is cleared first: that
  // changes no value below 2 (the only ones this case serves) and keeps NaN out of the addition,
  // which constant evaluation refuses.
  const Bits subnormal_input = kMayBeNaN ? magnitude & 0x3fffffffu : magnitude;
  const Float shifted = std::bit_cast<Float>(subnormal_input) + 0.5f;
  const Bits subnormal = sign | (std::bit_cast<Bits>(shifted) - 0x3f000000u);
  // Normal results: rebias the exponent and round the mantissa to 10 bits, ties to even.
  const Bits rounded = magnitude + 0xc8000fffu + ((magnitude >> 13) & 1u);
  const Bits normal = sign | ((rounded >> 13) & 0xffffu);
  const Bits not_nan =
      magnitude >= 0x477ff000u ? infinity : (magnitude < 0x38800000u ? subnormal : normal);
  if constexpr (!kMayBeNaN) return not_nan;
  const Bits quiet_nan = sign | 0x7e00u | ((bits >> 13) & 0x1ffu);  // payload's top bits kept
  return magnitude > 0x7f800000u ? quiet_nan : not_nan;
}

}  // namespace detail

constexpr float bf16_bits_to_f32(std::uint16_t bits) noexcept {
  return detail::bf16_lanes_to_f32<float>(std::uint32_t{bits});
}

constexpr std::uint16_t f32_to_bf16_bits(float value) noexcept {
  return static_cast<std::uint16_t>(detail::f32_to_bf16_lanes<std::uint32_t>(value));
}

constexpr float f16_bits_to_f32(std::uint16_t bits) noexcept {
  return detail::f16_lanes_to_f32<float>(std::uint32_t{bits});
}

constexpr std::uint16_t f32_to_f16_bits(float value) noexcept {
  return static_cast<std::uint16_t>(detail::f32_to_f16_lanes<std::uint32_t>(value));
}

}  // namespace l2norm

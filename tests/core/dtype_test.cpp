#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

TEST(DType, SizesNamesAndParsing) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
  }
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_FALSE(try_parse_dtype("f64").has_value());
  try {
    parse_dtype("int8");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_STREQ(error.what(), "unknown dtype 'int8' (expected f32, f16 or bf16)");
  }
}

// Every f16 bit pattern widens exactly and narrows back to itself (NaN payloads stay NaN).
TEST(DType, F16RoundTripsEveryBitPattern) {
  for (std::uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    const float wide = f16_bits_to_f32(std::uint16_t(bits));
    const _Float16 native = std::bit_cast<_Float16>(std::uint16_t(bits));
    if (std::isnan(wide)) {
      EXPECT_TRUE(std::isnan(float(native)));
      EXPECT_TRUE(std::isnan(f16_bits_to_f32(f32_to_f16_bits(wide))));
      continue;
    }
    ASSERT_EQ(std::bit_cast<std::uint32_t>(wide), std::bit_cast<std::uint32_t>(float(native)))
        << std::hex << bits;
    ASSERT_EQ(f32_to_f16_bits(wide), bits) << std::hex << bits;
  }
}

// Narrowing matches the compiler's own f32 -> _Float16 conversion (round to nearest even),
// including ties, overflow to infinity and the subnormal range.
TEST(DType, F16NarrowingMatchesCompilerOnManyValues) {
  std::mt19937 generator(1);
  for (int i = 0; i < 2000000; ++i) {
    std::uint32_t bits = std::uint32_t(generator());
    if (i % 4 == 0) bits = (bits & 0x8000'0000u) | (0x3300'0000u + (bits & 0x0fff'ffffu));
    if (i % 4 == 1) bits &= 0xffff'e000u | 0x1000u;  // exact ties between two f16 values
    const float value = std::bit_cast<float>(bits);
    if (std::isnan(value)) continue;
    ASSERT_EQ(f32_to_f16_bits(value), std::bit_cast<std::uint16_t>(static_cast<_Float16>(value)))
        << std::hex << bits;
  }
}

TEST(DType, Bf16RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(f32_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16_bits(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_TRUE(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(std::bit_cast<float>(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(std::bit_cast<float>(0xffc00000u)))));
  EXPECT_EQ(f32_to_bf16_bits(1e-40f), 0x0001);  // subnormals kept, not flushed
  for (std::uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    const float wide = bf16_bits_to_f32(std::uint16_t(bits));
    if (!std::isnan(wide)) {
      ASSERT_EQ(f32_to_bf16_bits(wide), bits);
    }
  }
}

}  // namespace
}  // namespace l2norm

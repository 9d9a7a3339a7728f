// The multiply-high division the kernels use for row indices of strided views
// (src/cuda/outer_divisor.hpp), checked on the host against the division operator: the kernels'
// formula is written out here, __umul64hi from 32-bit halves.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "cuda/outer_divisor.hpp"

namespace l2norm::detail::cuda {
namespace {

// The high 64 bits of a * b (__umul64hi), from 32-bit halves.
std::uint64_t multiply_high(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t a_low = a & 0xffffffffu, a_high = a >> 32;
  const std::uint64_t b_low = b & 0xffffffffu, b_high = b >> 32;
  const std::uint64_t low_low = a_low * b_low;
  const std::uint64_t high_low = a_high * b_low;
  const std::uint64_t low_high = a_low * b_high;
  const std::uint64_t middle = (low_low >> 32) + (high_low & 0xffffffffu) + low_high;
  return a_high * b_high + (high_low >> 32) + (middle >> 32);
}

// row_math.cuh's divide_by_outer_size.
std::uint64_t divide(const OuterDivisor& divisor, std::uint64_t n) {
  if (divisor.shift == 0) return n;
  const std::uint64_t high = multiply_high(divisor.multiplier, n);
  return (high + ((n - high) >> 1)) >> (divisor.shift - 1);
}

TEST(OuterDivisor, MultiplyHighIsExact) {
  // (2^64 - 1)^2 = 2^128 - 2^65 + 1: high half 2^64 - 2; and small cross checks.
  EXPECT_EQ(multiply_high(~std::uint64_t{0}, ~std::uint64_t{0}), ~std::uint64_t{0} - 1);
  EXPECT_EQ(multiply_high(std::uint64_t{1} << 32, std::uint64_t{1} << 32), 1u);
  EXPECT_EQ(multiply_high(std::uint64_t{1} << 63, 6), 3u);
  EXPECT_EQ(multiply_high(0xffffffffu, 0xffffffffu), 0u);
}

TEST(OuterDivisor, MatchesTheDivisionOperator) {
  std::vector<std::uint64_t> sizes;
  for (std::uint64_t size = 1; size <= 300; ++size) sizes.push_back(size);
  for (int bit = 8; bit <= 63; ++bit) {
    const std::uint64_t power = std::uint64_t{1} << bit;
    sizes.insert(sizes.end(), {power - 1, power});
    // Sizes are positive int64 values: at most 2^63.
    if (bit < 63) sizes.push_back(power + 1);
  }
  std::mt19937_64 random(7);
  for (int i = 0; i < 200; ++i) sizes.push_back((random() >> (1 + random() % 63)) | 1);
  const std::uint64_t largest_row = (std::uint64_t{1} << 63) - 1;
  for (const std::uint64_t size : sizes) {
    const OuterDivisor divisor = outer_divisor(size);
    std::vector<std::uint64_t> dividends{0,
                                         1,
                                         size - 1,
                                         size,
                                         size + 1,
                                         2 * size - 1,
                                         largest_row,
                                         largest_row - 1,
                                         largest_row / size * size};
    for (int i = 0; i < 200; ++i) dividends.push_back(random() >> (random() % 64) >> 1);
    for (const std::uint64_t n : dividends) {
      ASSERT_EQ(divide(divisor, n), n / size) << n << " / " << size;
    }
  }
}

}  // namespace
}  // namespace l2norm::detail::cuda

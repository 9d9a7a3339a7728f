// The kernel's vectorized conversions against the scalar ones of l2norm/dtype.hpp: every 16-bit
// pattern, and f32 values chosen to hit each rounding branch, compared bit for bit.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "cpu/convert.hpp"
#include "l2norm/dtype.hpp"

namespace l2norm::testing {
namespace {

std::vector<std::uint16_t> all_16_bit_patterns() {
  std::vector<std::uint16_t> patterns(65536);
  for (std::uint32_t i = 0; i < patterns.size(); ++i) patterns[i] = std::uint16_t(i);
  return patterns;
}

// Bit patterns around every boundary of the f32 -> f16 / bf16 rounding code, plus random ones.
std::vector<float> f32_probe_values() {
  std::vector<std::uint32_t> bits = {
      0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,  // zeros, infinities
      0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,  // quiet and signaling NaNs
      0x7fbfffffu, 0x7fffffffu, 0xffffffffu, 0x7fa00000u,  // NaN payloads
      0x00000001u, 0x807fffffu, 0x00400000u,               // f32 subnormals
      0x7f7fffffu, 0xff7fffffu,                            // FLT_MAX
      0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477ff001u,  // f16 65504 .. rounds to inf
      0x38800000u, 0x387fffffu, 0x387fe000u, 0x387ff000u,  // f16 normal / subnormal border
      0x33800000u, 0x33000000u, 0x33000001u, 0x32ffffffu,  // f16 2^-24 and its half (tie)
      0x33c00000u, 0x34200000u, 0x34600000u,               // f16 subnormal ties, odd and even
      0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu,  // bf16 ties to even
      0x3f801000u, 0x3f803000u, 0x3f801001u,               // f16 ties to even
      0x7f7f8000u, 0x7f7f7fffu,                            // bf16 rounding up to infinity
  };
  for (const std::uint32_t anchor : std::vector<std::uint32_t>(bits)) {
    for (std::uint32_t delta = 1; delta <= 3; ++delta) {
      bits.push_back(anchor + delta);
      bits.push_back(anchor - delta);
    }
  }
  // Every exponent, with mantissas hitting the rounding bits of both 16-bit formats.
  for (std::uint32_t sign = 0; sign < 2; ++sign) {
    for (std::uint32_t exponent = 0; exponent < 256; ++exponent) {
      for (const std::uint32_t mantissa : {0x000000u, 0x001000u, 0x002000u, 0x003000u, 0x008000u,
                                           0x018000u, 0x7fffffu, 0x400fffu, 0x401000u}) {
        bits.push_back(sign << 31 | exponent << 23 | mantissa);
      }
    }
  }
  std::mt19937 generator(1234);
  for (int i = 0; i < 1 << 20; ++i) bits.push_back(std::uint32_t(generator()));
  std::vector<float> values;
  values.reserve(bits.size());
  for (const std::uint32_t b : bits) values.push_back(std::bit_cast<float>(b));
  return values;
}

float scalar_widen(DType dtype, std::uint16_t bits) {
  return dtype == DType::f16 ? f16_bits_to_f32(bits) : bf16_bits_to_f32(bits);
}

std::uint16_t scalar_narrow(DType dtype, float value) {
  return dtype == DType::f16 ? f32_to_f16_bits(value) : f32_to_bf16_bits(value);
}

class VectorConversions : public ::testing::TestWithParam<DType> {};

// An f16 signaling NaN (exponent all ones, quiet bit clear, payload nonzero).
bool is_f16_signaling_nan(std::uint16_t bits) {
  return (bits & 0x7e00u) == 0x7c00u && (bits & 0x01ffu) != 0;
}

// Bit for bit the scalar formula, but that the F16C and AVX-512 versions widen an f16 signaling
// NaN to the same NaN quieted (cpu/chunk.hpp).
TEST_P(VectorConversions, WidenMatchesScalarForEveryPattern) {
  const DType dtype = GetParam();
  const std::vector<std::uint16_t> patterns = all_16_bit_patterns();
  std::vector<float> widened(patterns.size());
  detail::cpu::widen_to_f32(dtype, patterns.data(), widened.data(), patterns.size());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    const std::uint32_t expected = std::bit_cast<std::uint32_t>(scalar_widen(dtype, patterns[i]));
    const std::uint32_t got = std::bit_cast<std::uint32_t>(widened[i]);
    const bool quieted =
        dtype == DType::f16 && is_f16_signaling_nan(patterns[i]) && got == (expected | 0x00400000u);
    if (got != expected && !quieted && mismatches++ < 5) {
      ADD_FAILURE() << dtype_name(dtype) << " 0x" << std::hex << patterns[i] << " widened to 0x"
                    << got << ", scalar gives 0x" << expected;
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

// Every vector-narrowed value must equal the scalar conversion's; reports the first few misses.
void expect_narrowed_as_scalar(DType dtype, const std::vector<float>& values,
                               const std::vector<std::uint16_t>& narrowed) {
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint16_t expected = scalar_narrow(dtype, values[i]);
    if (narrowed[i] != expected && mismatches++ < 5) {
      ADD_FAILURE() << dtype_name(dtype) << " of f32 0x" << std::hex
                    << std::bit_cast<std::uint32_t>(values[i]) << " gave 0x" << narrowed[i]
                    << ", scalar gives 0x" << expected;
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST_P(VectorConversions, NarrowMatchesScalarOnEveryRepresentableValue) {
  const DType dtype = GetParam();
  // Widened patterns of both formats: exact values, and (for the other format) rounding cases.
  std::vector<float> values;
  for (const std::uint16_t bits : all_16_bit_patterns()) {
    values.push_back(f16_bits_to_f32(bits));
    values.push_back(bf16_bits_to_f32(bits));
  }
  std::vector<std::uint16_t> narrowed(values.size());
  detail::cpu::narrow_from_f32(dtype, values.data(), narrowed.data(), values.size());
  expect_narrowed_as_scalar(dtype, values, narrowed);
}

TEST_P(VectorConversions, NarrowMatchesScalarOnProbeValues) {
  const DType dtype = GetParam();
  const std::vector<float> values = f32_probe_values();
  std::vector<std::uint16_t> narrowed(values.size());
  detail::cpu::narrow_from_f32(dtype, values.data(), narrowed.data(), values.size());
  expect_narrowed_as_scalar(dtype, values, narrowed);
}

// The common-path rounding skips the NaN case; on everything else it must be exact.
TEST_P(VectorConversions, NonNaNNarrowMatchesScalarOnEveryOtherValue) {
  const DType dtype = GetParam();
  std::vector<float> values;
  for (const float value : f32_probe_values()) {
    if (!std::isnan(value)) values.push_back(value);
  }
  for (const std::uint16_t bits : all_16_bit_patterns()) {
    for (const float value : {f16_bits_to_f32(bits), bf16_bits_to_f32(bits)}) {
      if (!std::isnan(value)) values.push_back(value);
    }
  }
  std::vector<std::uint16_t> narrowed(values.size());
  detail::cpu::narrow_non_nan_from_f32(dtype, values.data(), narrowed.data(), values.size());
  expect_narrowed_as_scalar(dtype, values, narrowed);
}

// Lengths that are not multiples of the vector width go through the partial loads and stores.
TEST_P(VectorConversions, PartialLengthsWriteOnlyTheirElements) {
  const DType dtype = GetParam();
  const std::vector<float> values = f32_probe_values();
  for (std::size_t count = 0; count <= 40; ++count) {
    std::vector<std::uint16_t> narrowed(count + 4, 0xabcd);
    detail::cpu::narrow_from_f32(dtype, values.data(), narrowed.data(), count);
    std::vector<float> widened(count + 4, -7.0f);
    detail::cpu::widen_to_f32(dtype, narrowed.data(), widened.data(), count);
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(narrowed[i], scalar_narrow(dtype, values[i])) << "count " << count << " at " << i;
      ASSERT_EQ(std::bit_cast<std::uint32_t>(widened[i]),
                std::bit_cast<std::uint32_t>(scalar_widen(dtype, narrowed[i])))
          << "count " << count << " at " << i;
    }
    for (std::size_t i = count; i < count + 4; ++i) {
      ASSERT_EQ(narrowed[i], 0xabcd) << "count " << count << " wrote past the end";
      ASSERT_EQ(widened[i], -7.0f) << "count " << count << " wrote past the end";
    }
  }
}

TEST(VectorConversionsF32, AreTheIdentity) {
  const std::vector<float> values = f32_probe_values();
  std::vector<float> narrowed(values.size());
  std::vector<float> widened(values.size());
  detail::cpu::narrow_from_f32(DType::f32, values.data(), narrowed.data(), values.size());
  detail::cpu::widen_to_f32(DType::f32, narrowed.data(), widened.data(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(std::bit_cast<std::uint32_t>(widened[i]), std::bit_cast<std::uint32_t>(values[i]));
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, VectorConversions, ::testing::Values(DType::f16, DType::bf16),
                         [](const ::testing::TestParamInfo<DType>& param_info) {
                           return std::string(dtype_name(param_info.param));
                         });

}  // namespace
}  // namespace l2norm::testing

// The f16 chunk conversions of every instruction set (cpu/chunk.hpp: software formulas, F16C,
// AVX-512) against each other and against the scalar formulas of l2norm/dtype.hpp: widening of
// all 65536 patterns, alone and among other values, and rounding of all 2^32 f32 patterns. The
// sets the running CPU lacks are skipped. Widening is the formula's bits in every set but for the
// signaling NaNs, which the F16C and AVX-512 sets return quieted; also pinned down here on the
// conversion instruction itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "cpu/chunk.hpp"
#include "l2norm/dtype.hpp"

#if L2NORM_CPU_X86_ISAS

namespace l2norm::testing {
namespace {

using detail::cpu::F32x16;
using detail::cpu::U32x16;
using Halves = detail::cpu::Widened<DType::f16>;
namespace conv = detail::cpu::f16_convert;

// GCC gives the 64-byte vector types the alignment of the build's baseline (16 bytes), yet the
// functions built for AVX2 or AVX-512 below load them assuming their full size: arrays of them
// are allocated 64-byte aligned.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  explicit CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete (p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
template <class T>
using Chunks = std::vector<T, CacheLineAllocator<T>>;

// Element e of a chunk: lane e / 2 of the even (e % 2 == 0) or odd vector.
float element_of(const Halves& values, int e) {
  return values.vectors[e % 2][e / 2];
}
void set_element(Halves& values, int e, float value) {
  values.vectors[e % 2][e / 2] = value;
}
std::uint16_t half_of(const U32x16& raw, int e) {
  return std::uint16_t(e % 2 == 0 ? raw[e / 2] & 0xffffu : raw[e / 2] >> 16);
}
void set_half(U32x16& raw, int e, std::uint16_t bits) {
  const int shift = e % 2 == 0 ? 0 : 16;
  raw[e / 2] = (raw[e / 2] & ~(0xffffu << shift)) | (std::uint32_t{bits} << shift);
}

// ---- the implementations, each in a function of its instruction set ----

struct Implementation {
  const char* name;
  bool quiets_signaling_nans;
  bool (*supported)();
  void (*widen)(const U32x16* raw, Halves* values, std::size_t chunks);
  void (*narrow)(const Halves* values, U32x16* raw, std::size_t chunks);
  // Chunks [first, first + count) of all f32 patterns (chunk c holds patterns 32c .. 32c + 31)
  // rounded here and by the software formula; returns the first differing pattern, or none.
  bool (*narrow_differs)(std::uint64_t first, std::uint64_t count, std::uint32_t* pattern);
};

// Chunk c of all f32 patterns, in the chunk's even / odd layout.
inline Halves pattern_chunk(std::uint64_t chunk) {
  Halves values;
  for (int lane = 0; lane < 16; ++lane) {
    values.vectors[0][lane] = std::bit_cast<float>(std::uint32_t(chunk * 32 + 2 * lane));
    values.vectors[1][lane] = std::bit_cast<float>(std::uint32_t(chunk * 32 + 2 * lane + 1));
  }
  return values;
}

template <U32x16 (*kNarrow)(const Halves&)>
inline bool first_difference(std::uint64_t first, std::uint64_t count, std::uint32_t* pattern) {
  for (std::uint64_t chunk = first; chunk < first + count; ++chunk) {
    const Halves values = pattern_chunk(chunk);
    const U32x16 got = kNarrow(values);
    const U32x16 expected = conv::narrow_software<true>(values);
    const U32x16 differs = got != expected;
    bool any = false;
    for (int lane = 0; lane < 16; ++lane) any |= differs[lane] != 0;
    if (!any) continue;
    for (int e = 0; e < 32; ++e) {
      if (half_of(got, e) != half_of(expected, e)) {
        *pattern = std::uint32_t(chunk * 32 + std::uint64_t(e));
        return true;
      }
    }
  }
  return false;
}

bool always() {
  return true;
}
void widen_software(const U32x16* raw, Halves* values, std::size_t chunks) {
  for (std::size_t c = 0; c < chunks; ++c) values[c] = conv::widen_software(raw[c]);
}
void narrow_software(const Halves* values, U32x16* raw, std::size_t chunks) {
  for (std::size_t c = 0; c < chunks; ++c) raw[c] = conv::narrow_software<true>(values[c]);
}
// The non-NaN variant against the full one: must agree wherever no NaN is involved, and the loop
// below feeds it NaNs too, so it is compared on non-NaN chunks only.
U32x16 narrow_software_non_nan_or_full(const Halves& values) {
  bool nan = false;
  for (int k = 0; k < 2; ++k) {
    for (int lane = 0; lane < 16; ++lane) nan |= values.vectors[k][lane] != values.vectors[k][lane];
  }
  return nan ? conv::narrow_software<true>(values) : conv::narrow_software<false>(values);
}
bool narrow_differs_software(std::uint64_t first, std::uint64_t count, std::uint32_t* pattern) {
  return first_difference<narrow_software_non_nan_or_full>(first, count, pattern);
}

bool has_v3() {
  return __builtin_cpu_supports("x86-64-v3");
}
L2NORM_CPU_TARGET_V3 void widen_f16c(const U32x16* raw, Halves* values, std::size_t chunks) {
  for (std::size_t c = 0; c < chunks; ++c) values[c] = conv::widen_f16c(raw[c]);
}
L2NORM_CPU_TARGET_V3 void narrow_f16c(const Halves* values, U32x16* raw, std::size_t chunks) {
  for (std::size_t c = 0; c < chunks; ++c) raw[c] = conv::narrow_f16c(values[c]);
}
L2NORM_CPU_TARGET_V3 bool narrow_differs_f16c(std::uint64_t first, std::uint64_t count,
                                              std::uint32_t* pattern) {
  return first_difference<conv::narrow_f16c>(first, count, pattern);
}

bool has_v4() {
  return __builtin_cpu_supports("x86-64-v4");
}
L2NORM_CPU_TARGET_V4 void widen_avx512(const U32x16* raw, Halves* values, std::size_t chunks) {
  for (std::size_t c = 0; c < chunks; ++c) values[c] = conv::widen_avx512(raw[c]);
}
L2NORM_CPU_TARGET_V4 void narrow_avx512(const Halves* values, U32x16* raw, std::size_t chunks) {
  for (std::size_t c = 0; c < chunks; ++c) raw[c] = conv::narrow_avx512(values[c]);
}
L2NORM_CPU_TARGET_V4 bool narrow_differs_avx512(std::uint64_t first, std::uint64_t count,
                                                std::uint32_t* pattern) {
  return first_difference<conv::narrow_avx512>(first, count, pattern);
}

const Implementation kImplementations[] = {
    {"software", false, always, widen_software, narrow_software, narrow_differs_software},
    {"f16c", true, has_v3, widen_f16c, narrow_f16c, narrow_differs_f16c},
    {"avx512", true, has_v4, widen_avx512, narrow_avx512, narrow_differs_avx512},
};

void PrintTo(const Implementation& implementation, std::ostream* out) {
  *out << implementation.name;
}

class F16Conversions : public ::testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    if (!GetParam().supported()) GTEST_SKIP() << "this CPU lacks " << GetParam().name;
  }
};

std::string bits_text(float value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", std::bit_cast<std::uint32_t>(value));
  return text;
}

// An f16 signaling NaN (exponent all ones, quiet bit clear, payload nonzero).
bool is_signaling_nan(std::uint16_t bits) {
  return (bits & 0x7e00u) == 0x7c00u && (bits & 0x01ffu) != 0;
}

// Widens `raw` and checks every element against f16_bits_to_f32 bit for bit (a signaling NaN:
// against the same NaN quieted, where the implementation quiets them).
void expect_widened_as_scalar(const Implementation& implementation, const Chunks<U32x16>& raw,
                              const char* what) {
  Chunks<Halves> values(raw.size());
  implementation.widen(raw.data(), values.data(), raw.size());
  int mismatches = 0;
  for (std::size_t c = 0; c < raw.size(); ++c) {
    for (int e = 0; e < 32; ++e) {
      const std::uint16_t bits = half_of(raw[c], e);
      const std::uint32_t quiet =
          implementation.quiets_signaling_nans && is_signaling_nan(bits) ? 0x00400000u : 0u;
      const float expected =
          std::bit_cast<float>(std::bit_cast<std::uint32_t>(f16_bits_to_f32(bits)) | quiet);
      const float got = element_of(values[c], e);
      if (std::bit_cast<std::uint32_t>(got) != std::bit_cast<std::uint32_t>(expected) &&
          ++mismatches <= 5) {
        ADD_FAILURE() << implementation.name << " " << what << ": f16 0x" << std::hex << bits
                      << " (element " << std::dec << e << ") widened to " << bits_text(got)
                      << ", the formula gives " << bits_text(expected);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(F16Conversions, WidensEveryPatternAsTheFormula) {
  Chunks<U32x16> raw(65536 / 32);
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    set_half(raw[bits / 32], int(bits % 32), std::uint16_t(bits));
  }
  expect_widened_as_scalar(GetParam(), raw, "in order");
}

// Each pattern at each position of a chunk of otherwise ordinary values: the layout's even and
// odd lanes, and the neighbours of every special value, come out exact.
TEST_P(F16Conversions, WidensEveryPatternAtEveryPositionAmongOtherValues) {
  Chunks<U32x16> raw;
  raw.reserve(65536 * 32 / 16);
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    for (int position = int(bits % 2); position < 32; position += 2) {
      U32x16 chunk;
      for (int e = 0; e < 32; ++e) set_half(chunk, e, std::uint16_t(0x3c00 + 37 * e));  // 1.0 ..
      set_half(chunk, position, std::uint16_t(bits));
      raw.push_back(chunk);
    }
  }
  expect_widened_as_scalar(GetParam(), raw, "among other values");
}

TEST_P(F16Conversions, RoundsEveryWidenedPatternBack) {
  // Exact values of f16 come back as their own pattern (NaNs as the formula's quiet NaN).
  Chunks<Halves> values(65536 / 32);
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    set_element(values[bits / 32], int(bits % 32), f16_bits_to_f32(std::uint16_t(bits)));
  }
  Chunks<U32x16> raw(values.size());
  GetParam().narrow(values.data(), raw.data(), values.size());
  int mismatches = 0;
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const std::uint16_t got = half_of(raw[bits / 32], int(bits % 32));
    const std::uint16_t expected = f32_to_f16_bits(f16_bits_to_f32(std::uint16_t(bits)));
    if (got != expected && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam().name << ": f16 0x" << std::hex << bits << " round trip gave 0x"
                    << got << ", the formula gives 0x" << expected;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Every f32 pattern, spread over the CPU's threads: the implementation against the software
// formula in 16 lanes (which tests/cpu/convert_test.cpp holds to the scalar formula); ties,
// subnormal and overflow boundaries and every NaN payload are among them. A stride of the
// patterns goes through the scalar formula too.
TEST_P(F16Conversions, RoundsEveryF32PatternAsTheFormula) {
  constexpr std::uint64_t kChunks = (std::uint64_t{1} << 32) / 32;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> found{false};
  std::atomic<std::uint32_t> first_bad{0};
  const auto work = [&] {
    constexpr std::uint64_t kBatch = 1 << 16;
    for (;;) {
      const std::uint64_t first = next.fetch_add(kBatch);
      if (first >= kChunks || found.load()) return;
      std::uint32_t pattern = 0;
      if (GetParam().narrow_differs(first, std::min(kBatch, kChunks - first), &pattern)) {
        if (!found.exchange(true)) first_bad = pattern;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
  for (std::thread& thread : pool) thread.join();
  EXPECT_FALSE(found.load()) << GetParam().name << " rounds f32 0x" << std::hex << first_bad.load()
                             << " unlike the formula";

  // The scalar formula on a stride of patterns (and on the neighbours of each stride point).
  Chunks<Halves> values;
  std::vector<float> inputs;
  for (std::uint64_t p = 0; p < (std::uint64_t{1} << 32); p += 65521) {
    for (std::uint64_t d = 0; d < 32; ++d)
      inputs.push_back(std::bit_cast<float>(std::uint32_t(p + d)));
  }
  values.resize(inputs.size() / 32);
  for (std::size_t i = 0; i < inputs.size(); ++i)
    set_element(values[i / 32], int(i % 32), inputs[i]);
  Chunks<U32x16> raw(values.size());
  GetParam().narrow(values.data(), raw.data(), values.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::uint16_t got = half_of(raw[i / 32], int(i % 32));
    const std::uint16_t expected = f32_to_f16_bits(inputs[i]);
    if (got != expected && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam().name << ": f32 " << bits_text(inputs[i]) << " gave 0x" << std::hex
                    << got << ", the scalar formula gives 0x" << expected;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Cpu, F16Conversions, ::testing::ValuesIn(kImplementations),
                         [](const ::testing::TestParamInfo<Implementation>& param_info) {
                           return std::string(param_info.param.name);
                         });

// ---- what the instructions themselves do ----

// vcvtph2ps on all 65536 patterns: the formula's bits, except that a signaling NaN comes back with
// the quiet bit set.
L2NORM_CPU_TARGET_V3 void vcvtph2ps_all(std::uint32_t* out) {
  for (std::uint32_t first = 0; first < 65536; first += 8) {
    alignas(16) std::uint16_t halves[8];
    for (std::uint32_t i = 0; i < 8; ++i) halves[i] = std::uint16_t(first + i);
    __m128i packed;
    std::memcpy(&packed, halves, sizeof packed);
    const __m256 wide = _mm256_cvtph_ps(packed);
    std::memcpy(out + first, &wide, sizeof wide);
  }
}

TEST(F16Instructions, Vcvtph2psQuietsSignalingNaNsAndIsOtherwiseTheFormula) {
  if (!has_v3()) GTEST_SKIP() << "this CPU lacks F16C";
  std::vector<std::uint32_t> widened(65536);
  vcvtph2ps_all(widened.data());
  int signaling = 0;
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const auto expected = std::bit_cast<std::uint32_t>(f16_bits_to_f32(std::uint16_t(bits)));
    const bool is_signaling = is_signaling_nan(std::uint16_t(bits));
    signaling += is_signaling;
    ASSERT_EQ(widened[bits], is_signaling ? expected | 0x00400000u : expected)
        << "f16 0x" << std::hex << bits;
  }
  EXPECT_EQ(signaling, 2 * 511);
}

}  // namespace
}  // namespace l2norm::testing

#endif  // L2NORM_CPU_X86_ISAS

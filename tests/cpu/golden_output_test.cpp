// The CPU kernels' outputs, hashed, against hashes recorded from an earlier build: a change to the
// kernels or their conversions that moves a single bit of any output fails here. The same cases
// run against every instruction-set version of the kernels (tests/cpu/CMakeLists.txt builds this
// file once against the library's multiversioned kernels and once per lower instruction set, with
// the kernels built for that set alone), so the versions agree with each other and with the
// recorded outputs.
//
// Inputs come from integer arithmetic only (no <random> distributions, whose results differ
// between standard libraries), with special rows: zero, huge, tiny (subnormal), quiet and
// signaling NaNs with payloads, infinities, the largest finite values.
//
// L2NORM_GOLDEN_PRINT=1 prints the table of hashes as C++ source instead of comparing, for a
// deliberate change of the outputs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "l2norm/l2norm.hpp"

namespace l2norm::testing {
namespace {

constexpr DType kDTypes[] = {DType::f32, DType::f16, DType::bf16};

std::uint64_t fnv1a(const void* data, std::size_t bytes,
                    std::uint64_t hash = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  return hash;
}

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Host values in a dtype's bits.
class Bits {
 public:
  Bits(DType dtype, std::size_t count) : dtype_(dtype), bytes_(count * dtype_size(dtype)) {}
  void* data() { return bytes_.data(); }
  std::size_t bytes() const { return bytes_.size(); }
  std::uint64_t hash() const { return fnv1a(bytes_.data(), bytes_.size()); }
  // Stores a raw pattern of the dtype (32 bits for f32, the low 16 for f16/bf16).
  void set_raw(std::size_t i, std::uint32_t raw) {
    if (dtype_ == DType::f32) {
      std::memcpy(bytes_.data() + 4 * i, &raw, 4);
    } else {
      const auto half = static_cast<std::uint16_t>(raw);
      std::memcpy(bytes_.data() + 2 * i, &half, 2);
    }
  }
  // Rounds an f32 value into the dtype.
  void set(std::size_t i, float value) {
    switch (dtype_) {
      case DType::f32:
        set_raw(i, std::bit_cast<std::uint32_t>(value));
        break;
      case DType::f16:
        set_raw(i, f32_to_f16_bits(value));
        break;
      case DType::bf16:
        set_raw(i, f32_to_bf16_bits(value));
        break;
    }
  }

 private:
  DType dtype_;
  std::vector<std::byte> bytes_;
};

// Patterns of each dtype: {f32, f16, bf16}.
struct Pattern {
  std::uint32_t f32, f16, bf16;
  std::uint32_t of(DType dtype) const {
    return dtype == DType::f32 ? f32 : dtype == DType::f16 ? f16 : bf16;
  }
};
constexpr Pattern kQuietNaN{0x7fc12345u, 0x7e45u, 0x7fc5u};
constexpr Pattern kSignalingNaN{0x7f800001u, 0x7c01u, 0x7f81u};
constexpr Pattern kNegativeNaN{0xffa00000u, 0xfd00u, 0xffa0u};  // signaling, payload's top bit
constexpr Pattern kInfinity{0x7f800000u, 0x7c00u, 0x7f80u};
constexpr Pattern kNegativeInfinity{0xff800000u, 0xfc00u, 0xff80u};
constexpr Pattern kLargest{0x7f7fffffu, 0x7bffu, 0x7f7fu};
constexpr Pattern kSmallestSubnormal{0x00000001u, 0x0001u, 0x0001u};

// rows x dim values: random rows with magnitudes spread over 2^-10 .. 2^10, and special rows.
Bits make_input(DType dtype, std::int64_t rows, std::int64_t dim, std::uint64_t seed) {
  Bits input(dtype, std::size_t(rows * dim));
  std::uint64_t state = seed * 0x2545f4914f6cdd1dull + std::uint64_t(dim);
  for (std::int64_t i = 0; i < rows * dim; ++i) {
    const std::uint64_t r = splitmix(state);
    const float mantissa = 1.0f + float(r & 0xffffff) * 0x1p-24f;
    const int exponent = int((r >> 24) % 21) - 10;
    const float value = (r >> 63 ? -mantissa : mantissa) * std::ldexp(1.0f, exponent);
    input.set(std::size_t(i), value);
  }
  const auto at = [&](std::int64_t row, std::int64_t j) { return std::size_t(row * dim + j); };
  const auto fill_row = [&](std::int64_t row, auto value_of) {
    if (row >= rows) return;
    for (std::int64_t j = 0; j < dim; ++j) value_of(at(row, j), j);
  };
  const float huge = dtype == DType::f16 ? 60000.0f : 3e20f;
  const float tiny = dtype == DType::f16 ? 6e-8f : 1e-40f;
  fill_row(0, [&](std::size_t i, std::int64_t) { input.set(i, 0.0f); });
  fill_row(1, [&](std::size_t i, std::int64_t j) { input.set(i, j % 2 ? huge : -huge); });
  fill_row(2, [&](std::size_t i, std::int64_t j) { input.set(i, j % 3 ? tiny : 0.0f); });
  fill_row(3, [&](std::size_t i, std::int64_t j) {
    if (j == dim / 2) input.set_raw(i, kQuietNaN.of(dtype));
  });
  fill_row(4, [&](std::size_t i, std::int64_t j) {
    if (j == 0) input.set_raw(i, kSignalingNaN.of(dtype));
    if (j == dim - 1) input.set_raw(i, kNegativeNaN.of(dtype));
  });
  fill_row(5, [&](std::size_t i, std::int64_t j) {
    if (j == dim / 3) input.set_raw(i, kInfinity.of(dtype));
  });
  fill_row(6, [&](std::size_t i, std::int64_t j) {
    if (j == 0) input.set_raw(i, kNegativeInfinity.of(dtype));
    if (j == dim - 1) input.set_raw(i, kInfinity.of(dtype));
  });
  fill_row(7, [&](std::size_t i, std::int64_t j) {
    if (j == 0) input.set_raw(i, kInfinity.of(dtype));
    if (j == dim - 1) input.set_raw(i, kSignalingNaN.of(dtype));
  });
  fill_row(8, [&](std::size_t i, std::int64_t j) {
    input.set_raw(
        i, kLargest.of(dtype) | (j % 2 ? 0u : (dtype == DType::f32 ? 0x80000000u : 0x8000u)));
  });
  fill_row(9, [&](std::size_t i, std::int64_t j) { input.set(i, j == dim / 2 ? -3.0f : 0.0f); });
  fill_row(10, [&](std::size_t i, std::int64_t j) {
    input.set_raw(i, j % 5 == 0 ? kSmallestSubnormal.of(dtype) : 0u);
  });
  return input;
}

struct OptionsCase {
  const char* name;
  L2NormOptions options;
};
const OptionsCase kOptions[] = {
    {"add", {.eps = 1e-6f, .scale = 1.0f, .eps_mode = EpsMode::add}},
    {"add_eps0_scale", {.eps = 0.0f, .scale = 0.125f, .eps_mode = EpsMode::add}},
    {"clamp_scale", {.eps = 1e-3f, .scale = 2.5f, .eps_mode = EpsMode::clamp}},
    {"clamp_eps0", {.eps = 0.0f, .scale = 1.0f, .eps_mode = EpsMode::clamp}},
};

std::string case_name(const char* op, DType dtype, std::int64_t rows, std::int64_t dim,
                      const char* options) {
  return std::string(op) + "/" + std::string(dtype_name(dtype)) + "/" + std::to_string(rows) + "x" +
         std::to_string(dim) + "/" + options;
}

// name -> hash of every output (and rstd) byte, for all cases.
std::map<std::string, std::uint64_t> compute_hashes() {
  std::map<std::string, std::uint64_t> hashes;
  CommandEncoder encoder(Device::cpu());
  const Device cpu = Device::cpu();

  // Forward: every dim class (below a chunk, chunk and block boundaries, several blocks).
  for (const DType dtype : kDTypes) {
    for (const std::int64_t dim :
         {1, 3, 16, 31, 32, 33, 100, 127, 128, 129, 255, 768, 1031, 4100}) {
      const std::int64_t rows = 23;
      Bits input = make_input(dtype, rows, dim, 1);
      for (const OptionsCase& options : kOptions) {
        Bits output(dtype, std::size_t(rows * dim));
        Bits rstd(DType::f32, std::size_t(rows));
        l2_norm(encoder, TensorView(input.data(), dtype, cpu, {rows, dim}),
                TensorView(output.data(), dtype, cpu, {rows, dim}),
                TensorView(rstd.data(), DType::f32, cpu, {rows}), options.options);
        encoder.wait();
        hashes[case_name("forward", dtype, rows, dim, options.name)] = output.hash();
        hashes[case_name("rstd", dtype, rows, dim, options.name)] = rstd.hash();
      }
    }
  }

  // Forward with outputs larger than the last-level cache (streaming stores).
  for (const DType dtype : kDTypes) {
    const std::int64_t rows = 24 * 1024;
    const std::int64_t dim = dtype == DType::f32 ? 768 : 1536;
    Bits input = make_input(dtype, rows, dim, 2);
    Bits output(dtype, std::size_t(rows * dim));
    l2_norm(encoder, TensorView(input.data(), dtype, cpu, {rows, dim}),
            TensorView(output.data(), dtype, cpu, {rows, dim}), kOptions[0].options);
    encoder.wait();
    hashes[case_name("forward_large", dtype, rows, dim, kOptions[0].name)] = output.hash();
  }

  // Backward, every combination of dtypes, from the output and rstd and from the input.
  for (const std::int64_t dim : {33, 256, 1031}) {
    const std::int64_t rows = 13;
    for (const DType y_dtype : kDTypes) {
      Bits x = make_input(y_dtype, rows, dim, 3);
      for (const OptionsCase& options : {kOptions[0], kOptions[2]}) {
        Bits y(y_dtype, std::size_t(rows * dim));
        Bits rstd(DType::f32, std::size_t(rows));
        L2NormOptions forward_options = options.options;
        forward_options.scale = 1.0f;
        l2_norm(encoder, TensorView(x.data(), y_dtype, cpu, {rows, dim}),
                TensorView(y.data(), y_dtype, cpu, {rows, dim}),
                TensorView(rstd.data(), DType::f32, cpu, {rows}), forward_options);
        encoder.wait();
        for (const DType dy_dtype : kDTypes) {
          Bits dy = make_input(dy_dtype, rows, dim, 4);
          for (const DType dx_dtype : kDTypes) {
            const std::string dtypes = std::string(dtype_name(dy_dtype)) + "," +
                                       std::string(dtype_name(y_dtype)) + "," +
                                       std::string(dtype_name(dx_dtype));
            Bits dx(dx_dtype, std::size_t(rows * dim));
            l2_norm_backward(encoder, TensorView(dy.data(), dy_dtype, cpu, {rows, dim}),
                             TensorView(y.data(), y_dtype, cpu, {rows, dim}),
                             TensorView(rstd.data(), DType::f32, cpu, {rows}),
                             TensorView(dx.data(), dx_dtype, cpu, {rows, dim}), options.options);
            encoder.wait();
            hashes["backward/" + dtypes + "/" + std::to_string(rows) + "x" + std::to_string(dim) +
                   "/" + options.name] = dx.hash();
            Bits dx_from_input(dx_dtype, std::size_t(rows * dim));
            l2_norm_backward_from_input(
                encoder, TensorView(dy.data(), dy_dtype, cpu, {rows, dim}),
                TensorView(x.data(), y_dtype, cpu, {rows, dim}),
                TensorView(dx_from_input.data(), dx_dtype, cpu, {rows, dim}), options.options);
            encoder.wait();
            hashes["backward_from_input/" + dtypes + "/" + std::to_string(rows) + "x" +
                   std::to_string(dim) + "/" + options.name] = dx_from_input.hash();
          }
        }
      }
    }
  }
  return hashes;
}

// Recorded from the kernels of commit d3b062d (their AVX-512 clone, software f16 conversions);
// every build of the kernels must reproduce them.
const std::map<std::string, std::uint64_t>& expected_hashes() {
  static const std::map<std::string, std::uint64_t> hashes = {
#include "golden_output_hashes.inc"
  };
  return hashes;
}

TEST(CpuGoldenOutputs, EveryOutputBitAsRecorded) {
#if defined(L2NORM_CPU_ONLY_ISA) && L2NORM_CPU_ONLY_ISA == 3
  if (!__builtin_cpu_supports("x86-64-v3")) GTEST_SKIP() << "this CPU lacks x86-64-v3";
#elif defined(L2NORM_CPU_ONLY_ISA) && L2NORM_CPU_ONLY_ISA == 4
  if (!__builtin_cpu_supports("x86-64-v4")) GTEST_SKIP() << "this CPU lacks x86-64-v4";
#endif
  const std::map<std::string, std::uint64_t> hashes = compute_hashes();
  const char* print = std::getenv("L2NORM_GOLDEN_PRINT");
  if (print != nullptr && std::string(print) == "1") {
    for (const auto& [name, hash] : hashes) {
      std::printf("    {\"%s\", 0x%016llxull},\n", name.c_str(),
                  static_cast<unsigned long long>(hash));
    }
    GTEST_SKIP() << "printed " << hashes.size() << " hashes";
  }
  const std::map<std::string, std::uint64_t>& expected = expected_hashes();
  EXPECT_EQ(hashes.size(), expected.size()) << "the case list changed; regenerate the table";
  int mismatches = 0;
  for (const auto& [name, hash] : hashes) {
    const auto found = expected.find(name);
    if (found == expected.end()) {
      ADD_FAILURE() << name << ": no recorded hash";
    } else if (found->second != hash && ++mismatches <= 20) {
      ADD_FAILURE() << name << ": output hash 0x" << std::hex << hash << ", recorded 0x"
                    << found->second;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace l2norm::testing

// l2_norm into an output of another dtype, on every backend: all nine (input, output) pairs of f32,
// f16 and bf16, both eps modes, with and without scale. The output is the f32 result rounded once:
// - bit for bit round_out(y), y the output of the same input normalized into f32 on the same
//   backend (on CUDA with the same vector width, which contiguous buffers give every pair), and
//   with scale round_out(round_out(y) * scale), bit for bit the unscaled output multiplied by
//   scale in a separate pass in the output type;
// - within the output type's budget of a float64 reference (docs/DESIGN.md);
// for rows of every CUDA kernel (rows, staged, split on chip, split streamed), rare rows (huge,
// tiny, zero, NaN, Inf), strided and misaligned views whose alignments differ between input and
// output, and with rstd (the same bits as with the input's dtype on both sides). In place with
// another dtype is refused (validation_test.cpp checks the message).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

constexpr float kScales[] = {0.0883883476f, -3.0f};

std::string pair_name(DType input, DType output) {
  return std::string(dtype_name(input)) + "->" + std::string(dtype_name(output));
}

std::string describe(DType input, DType output, const L2NormOptions& options, std::int64_t rows,
                     std::int64_t dim) {
  return pair_name(input, output) + " " + std::string(eps_mode_name(options.eps_mode)) + " eps " +
         std::to_string(options.eps) + " scale " + std::to_string(options.scale) + " " +
         std::to_string(rows) + "x" + std::to_string(dim);
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

// Round to nearest even into `dtype` and back (the library's host conversions).
float round_to(DType dtype, float value) {
  if (dtype == DType::f16) return f16_bits_to_f32(f32_to_f16_bits(value));
  if (dtype == DType::bf16) return bf16_bits_to_f32(f32_to_bf16_bits(value));
  return value;
}

// Expects element i of `got` to be expected(i) bit for bit (widening is exact and one-to-one, so
// comparing widened values compares the stored bits), or both NaN: a NaN's payload is the
// backend's.
template <class Expected>
void expect_bitwise(const HostTensor& got, const Expected& expected, const std::string& what) {
  std::size_t failures = 0;
  for (std::size_t i = 0; i < got.count(); ++i) {
    const float value = got.get(i);
    const float wanted = expected(i);
    if (std::isnan(value) && std::isnan(wanted)) continue;
    if (std::bit_cast<std::uint32_t>(value) != std::bit_cast<std::uint32_t>(wanted) &&
        failures++ < 5) {
      ADD_FAILURE() << what << ": element " << i << " is " << value << ", expected " << wanted;
    }
  }
  EXPECT_EQ(failures, 0u) << what;
}

// The first value of a row [a, b, 0, ...] that takes the rare path (docs/DESIGN.md "Semantics",
// step 3), rounded to `output`: both squares and their sum are exact or rounded once in double, in
// any order.
float rare_path_value(float a, float b, float eps, EpsMode mode, DType output) {
  const double sum = double(a) * double(a) + double(b) * double(b);
  const double norm = std::sqrt(sum);
  const double inverse =
      mode == EpsMode::add ? 1.0 / std::sqrt(sum + double(eps)) : 1.0 / std::max(norm, double(eps));
  return round_to(output, float(double(a) * inverse));
}

L2NormOptions with_scale(L2NormOptions options, float scale) {
  options.scale = scale;
  return options;
}

class OutputDType : public OnEveryBackend {
 protected:
  // The variant name names both dtypes, the second only where it differs: on the CPU
  // "cpu.l2_norm<bf16->f32,...", on CUDA "l2_norm_<kind><bf16->f32,...", of `cuda_kernel` (a name
  // prefix) when given.
  void expect_variant(const std::string& variant, DType input, DType output,
                      const char* cuda_kernel, const std::string& what) {
    const std::string dtypes =
        input == output ? std::string(dtype_name(input)) : pair_name(input, output);
    if (device().is_cpu()) {
      EXPECT_TRUE(starts_with(variant, "cpu.l2_norm<" + dtypes + ",")) << what << ": " << variant;
      return;
    }
    EXPECT_NE(variant.find("<" + dtypes + ","), std::string::npos) << what << ": " << variant;
    if (cuda_kernel != nullptr) {
      EXPECT_TRUE(starts_with(variant, cuda_kernel)) << what << ": " << variant;
    }
  }

  // Normalizes the contiguous rows x dim of `x` into every output dtype, unscaled and with each
  // scale of kScales, and checks each output against the f32 output (bit for bit) and the float64
  // reference (within the output type's budget). `checks(output, result, what)` may check more.
  template <class Checks>
  void check_every_output(const HostTensor& x, std::int64_t rows, std::int64_t dim,
                          const L2NormOptions& options, const char* cuda_kernel,
                          const Checks& checks) {
    const DType input = x.dtype();
    const L2NormOptions unscaled_options = with_scale(options, 1.0f);
    const HostTensor y = run_l2_norm_into(device(), x, DType::f32, rows, dim, unscaled_options);
    const std::vector<double> reference = reference_l2_norm(x, rows, dim, unscaled_options);
    for (const DType output : kDTypes) {
      const std::string what = describe(input, output, unscaled_options, rows, dim);
      std::string variant;
      const HostTensor unscaled =
          run_l2_norm_into(device(), x, output, rows, dim, unscaled_options, &variant);
      expect_variant(variant, input, output, cuda_kernel, what);
      expect_bitwise(
          unscaled, [&](std::size_t i) { return round_to(output, y.get(i)); },
          what + ": round_out(y) of the f32 output y");
      expect_within_budget(unscaled, reference, dim, false, what.c_str());
      checks(output, unscaled, what);
      for (const float scale : kScales) {
        const L2NormOptions scaled_options = with_scale(options, scale);
        const std::string scaled_what = describe(input, output, scaled_options, rows, dim);
        const HostTensor scaled = run_l2_norm_into(device(), x, output, rows, dim, scaled_options);
        // The same bits as a separate multiply pass over the unscaled output, in the output type
        // (round_out(round_out(y) * scale), since unscaled is round_out(y)).
        expect_bitwise(
            scaled, [&](std::size_t i) { return round_to(output, unscaled.get(i) * scale); },
            scaled_what + ": a separate multiply pass in the output type");
        std::vector<double> scaled_reference = reference;
        for (double& value : scaled_reference) value *= double(scale);
        expect_within_budget(scaled, scaled_reference, dim, true, scaled_what.c_str());
      }
    }
  }

  void check_every_output(const HostTensor& x, std::int64_t rows, std::int64_t dim,
                          const L2NormOptions& options, const char* cuda_kernel = nullptr) {
    check_every_output(x, rows, dim, options, cuda_kernel,
                       [](DType, const HostTensor&, const std::string&) {});
  }
};

TEST_P(OutputDType, EveryPairIsTheF32ResultRoundedOnce) {
  for_each_swept_shape(
      301, [&](const HostTensor& x, std::int64_t rows, std::int64_t dim,
               const L2NormOptions& options) { check_every_output(x, rows, dim, options); });
}

// Rows for each CUDA kernel (the planner's choices on an H100 or H200: 132 multiprocessors, 227
// KiB of shared memory per block): 140 rows of 20000 (a row for every multiprocessor: staged), 4
// rows of 70000 (split on chip, the row summed by every warp), and on CUDA 2 rows of 2^23 (split on
// chip, summed by the block) and 2^24 (split streamed for f32; a 16-bit row stays on chip)
// elements. Row 1 (scaled by 1e-30) and the
// last row (zero) take the rare path. The CPU runs the rows of up to 70000 elements.
TEST_P(OutputDType, LongRowsOnEveryKernel) {
  struct Case {
    std::int64_t rows;
    std::int64_t dim;
    const char* cuda_kernel;
  };
  const Case cases[] = {
      {140, 20000, "l2_norm_staged<"},
      {4, 70000, "l2_norm_split_on_chip<"},
      {2, std::int64_t{1} << 23, "l2_norm_split_on_chip<"},
      {2, std::int64_t{1} << 24, "l2_norm_split_streamed<"},
  };
  for (const Case& c : cases) {
    if (device().is_cpu() && c.dim > 100000) continue;
    // The longest rows for one 16-bit and one f32 input, the others for every input.
    for (const DType input : kDTypes) {
      if (c.dim > 100000 && input == DType::f16) continue;
      HostTensor x = random_tensor(input, std::size_t(c.rows * c.dim), 31);
      for (std::int64_t j = 0; j < c.dim; ++j) {
        x.set(std::size_t(c.dim + j), x.get(std::size_t(c.dim + j)) * 1e-30f);
        if (c.rows > 2) x.set(std::size_t((c.rows - 1) * c.dim + j), 0.0f);
      }
      // A 16-bit row of 2^24 elements (32 MiB) still fits the chip of those devices.
      const bool fits_on_chip = c.dim == (std::int64_t{1} << 24) && input != DType::f32;
      check_every_output(x, c.rows, c.dim, {.eps = 1e-12f, .eps_mode = EpsMode::clamp},
                         fits_on_chip ? "l2_norm_split_on_chip<" : c.cuda_kernel);
    }
  }
}

// The rows of docs/DESIGN.md "Semantics" through every pair, on every kernel shape: their bits
// follow the f32 output's (checked for every element), and the documented values hold in every
// output type.
TEST_P(OutputDType, SpecialRowsInEveryPair) {
  const std::vector<std::vector<float>> special = {
      {},  // zero
      {1.0f, kNaN, 2.0f},
      {kInf, 1.0f, -2.0f},
      {-kInf, kNaN},
      {3e20f, 4e20f},    // huge: the f32 sum overflows (not in f16)
      {1e-40f, 1e-40f},  // tiny: subnormal (0 in f16)
      {3.0f, 4.0f}};
  const auto rows = std::int64_t(special.size());
  for (const std::int64_t dim : {2, 128, 5000, 70000}) {
    for (const DType input : kDTypes) {
      HostTensor x(input, std::size_t(rows * dim));
      for (std::int64_t i = 0; i < rows * dim; ++i) x.set(std::size_t(i), 0.0f);
      for (std::int64_t row = 0; row < rows; ++row) {
        const std::vector<float>& values = special[std::size_t(row)];
        for (std::size_t j = 0; j < values.size() && j < std::size_t(dim); ++j) {
          x.set(std::size_t(row * dim) + j, values[j]);
        }
      }
      for (const EpsMode mode : kModes) {
        for (const float eps : {0.0f, 1e-6f}) {
          const auto checks = [&](DType output, const HostTensor& y, const std::string& what) {
            const auto at = [&](std::int64_t row, std::int64_t j) {
              return y.get(std::size_t(row * dim + j));
            };
            for (std::int64_t j = 0; j < dim; ++j) {
              if (eps > 0.0f) {
                EXPECT_EQ(std::bit_cast<std::uint32_t>(at(0, j)), 0u) << what << " zero row";
              } else {
                EXPECT_TRUE(std::isnan(at(0, j))) << what << " zero row, eps 0";
              }
              EXPECT_TRUE(std::isnan(at(1, j))) << what << " NaN row";
              EXPECT_TRUE(std::isnan(at(3, j))) << what << " Inf and NaN row";
            }
            EXPECT_TRUE(std::isnan(at(2, 0))) << what << " Inf row";
            EXPECT_EQ(std::bit_cast<std::uint32_t>(at(2, 1)), 0u) << what << " Inf row";
            if (dim > 2) {
              EXPECT_EQ(std::bit_cast<std::uint32_t>(at(2, 2)), 0x80000000u) << what << " Inf row";
            }
            if (input != DType::f16) {  // f16 holds neither 3e20 nor 1e-40
              EXPECT_EQ(at(4, 0),
                        rare_path_value(x.get(std::size_t(4 * dim)),
                                        x.get(std::size_t(4 * dim + 1)), eps, mode, output))
                  << what << " huge row";
              EXPECT_EQ(at(5, 0),
                        rare_path_value(x.get(std::size_t(5 * dim)),
                                        x.get(std::size_t(5 * dim + 1)), eps, mode, output))
                  << what << " tiny row";
            }
            if (eps == 0.0f) {
              const float inverse = 1.0f / std::sqrt(25.0f);
              EXPECT_EQ(at(6, 0), round_to(output, 3.0f * inverse)) << what << " [3, 4]";
              EXPECT_EQ(at(6, 1), round_to(output, 4.0f * inverse)) << what << " [3, 4]";
            }
          };
          check_every_output(x, rows, dim, {.eps = eps, .eps_mode = mode}, nullptr, checks);
        }
      }
    }
  }
}

// Views over an input storage of one dtype and an output storage of another: rows through the
// index arithmetic a user would write, within the output type's budget, every element outside the
// output view untouched. On the CPU, whose results do not depend on alignment, also bit for bit
// the contiguous call's.
class OutputDTypeViews : public OutputDType {
 protected:
  void check(DType input, DType output, std::int64_t storage,
             const std::vector<std::int64_t>& shape, const StorageView& in, const StorageView& out,
             const L2NormOptions& options, const std::string& label) {
    const std::string what = pair_name(input, output) + " " + label;
    const HostTensor input_storage = random_tensor(input, std::size_t(storage), 41);
    HostTensor output_storage = random_tensor(output, std::size_t(storage), 42);
    const HostTensor output_before = output_storage;

    Buffer input_buffer(device(), input, storage);
    input_buffer.copy_from_host(input_storage.data(), input_storage.bytes());
    Buffer output_buffer(device(), output, storage);
    output_buffer.copy_from_host(output_storage.data(), output_storage.bytes());
    const TensorView in_view(
        static_cast<std::byte*>(input_buffer.data()) + in.offset * std::int64_t(dtype_size(input)),
        input, device(), shape, in.strides);
    const TensorView out_view(static_cast<std::byte*>(output_buffer.data()) +
                                  out.offset * std::int64_t(dtype_size(output)),
                              output, device(), shape, out.strides);
    {
      CommandEncoder encoder(device());
      l2_norm(encoder, in_view, out_view, options);
      encoder.wait();
    }
    output_buffer.copy_to_host(output_storage.data(), output_storage.bytes());

    const std::int64_t rows = in_view.rows(), dim = in_view.dim();
    const GatheredRows gathered = gather_rows(input_storage, in, output_storage, out, shape);
    expect_within_budget(gathered.output, reference_l2_norm(gathered.input, rows, dim, options),
                         dim, options.scale != 1.0f, what.c_str());
    EXPECT_EQ(count_clobbered(output_before, output_storage, gathered.written), 0u)
        << what << ": elements outside the output view changed";
    if (device().is_cpu()) {
      const HostTensor contiguous =
          run_l2_norm_into(device(), gathered.input, output, rows, dim, options);
      EXPECT_TRUE(contiguous.bitwise_equal(gathered.output)) << what << ": differs from contiguous";
    }
  }
};

// Offsets of 1 to 7 elements on either side: the vector width is the widest both views allow, so
// an aligned input with a misaligned output (and the reverse) takes narrower vectors.
TEST_P(OutputDTypeViews, MisalignedPointers) {
  for (const DType input : kDTypes) {
    for (const DType output : kDTypes) {
      if (input == output) continue;
      for (std::int64_t offset = 0; offset <= 7; ++offset) {
        for (const std::int64_t dim : {std::int64_t{7}, std::int64_t{128}, std::int64_t{4100}}) {
          const std::int64_t rows = 9, storage = rows * dim + 8;
          const std::string label = "offsets " + std::to_string(offset) + "/" +
                                    std::to_string(8 - offset) + " dim " + std::to_string(dim);
          check(input, output, storage, {rows, dim}, {offset, {dim, 1}}, {8 - offset, {dim, 1}}, {},
                label);
          check(input, output, storage, {rows, dim}, {0, {dim, 1}}, {offset, {dim, 1}},
                {.scale = 0.5f}, "aligned input, output " + label);
          check(input, output, storage, {rows, dim}, {offset, {dim, 1}}, {0, {dim, 1}},
                {.eps_mode = EpsMode::clamp}, "aligned output, input " + label);
        }
      }
    }
  }
}

TEST_P(OutputDTypeViews, SlicesPermutationsAndOddStrides) {
  // qkv projection [T, 3, H, D] in bf16: q = [:, 0] into a contiguous f32 output (scaled), k =
  // [:, 1] into an f16 one with the projection's strides.
  constexpr std::int64_t T = 37, H = 4, D = 128;
  const std::vector<std::int64_t> qkv{T, H, D};
  check(DType::bf16, DType::f32, T * 3 * H * D, qkv, {0, {3 * H * D, D, 1}}, {0, {H * D, D, 1}},
        {.scale = 0.0883883476f}, "q of a packed projection");
  check(DType::bf16, DType::f16, T * 3 * H * D, qkv, {H * D, {3 * H * D, D, 1}},
        {H * D, {3 * H * D, D, 1}}, {.eps_mode = EpsMode::clamp}, "k of a packed projection");
  // Storage [B, H, T, D] viewed as [B, T, H, D] (outer rank 3), into a contiguous output.
  constexpr std::int64_t B = 2, T2 = 5, H2 = 3, D2 = 96;
  check(DType::f32, DType::bf16, B * H2 * T2 * D2, {B, T2, H2, D2},
        {0, {H2 * T2 * D2, D2, T2 * D2, 1}}, {0, {T2 * H2 * D2, H2 * D2, D2, 1}}, {},
        "rank 4 permuted");
  // Row strides that are not a multiple of any vector width, on one side or both.
  for (const std::int64_t dim : {std::int64_t{8}, std::int64_t{128}, std::int64_t{1000}}) {
    const std::int64_t rows = 50, stride = dim + 3;
    check(DType::f16, DType::f32, rows * stride, {rows, dim}, {0, {stride, 1}}, {0, {dim, 1}}, {},
          "input row stride dim+3, dim " + std::to_string(dim));
    check(DType::f32, DType::bf16, rows * stride, {rows, dim}, {0, {dim, 1}}, {0, {stride, 1}}, {},
          "output row stride dim+3, dim " + std::to_string(dim));
  }
}

// rstd depends on the input alone: for every pair it is bit for bit the rstd of the call with the
// input's dtype on both sides, and the output is bit for bit the form without rstd's. A strided
// rstd, rare rows (row 1 scaled by 1e-30, a zero last row) and rows for every CUDA kernel.
TEST_P(OutputDType, RstdIsTheInputDTypeCallsRstd) {
  struct Case {
    std::int64_t rows;
    std::int64_t dim;
  };
  for (const Case c :
       {Case{37, 3}, Case{37, 128}, Case{21, 1000}, Case{140, 20000}, Case{4, 70000}}) {
    for (const DType input : kDTypes) {
      HostTensor x = random_tensor(input, std::size_t(c.rows * c.dim), 43);
      for (std::int64_t j = 0; j < c.dim; ++j) {
        x.set(std::size_t(c.dim + j), x.get(std::size_t(c.dim + j)) * 1e-30f);
        x.set(std::size_t((c.rows - 1) * c.dim + j), 0.0f);
      }
      const std::int64_t rstd_stride = 3;
      const auto rstd_of = [&](DType output, const L2NormOptions& options, HostTensor* y) {
        Buffer in(device(), input, c.rows * c.dim), out(device(), output, c.rows * c.dim);
        // The slots between the rows' rstd values hold a sentinel the call must leave alone.
        constexpr float kUntouched = -7.0f;
        std::vector<float> all(std::size_t((c.rows - 1) * rstd_stride + 1), kUntouched);
        Buffer rstd(device(), DType::f32, std::int64_t(all.size()));
        rstd.copy_from_host(all.data(), all.size() * sizeof(float));
        in.copy_from_host(x.data(), x.bytes());
        {
          CommandEncoder encoder(device());
          l2_norm(encoder, in.view({c.rows, c.dim}), out.view({c.rows, c.dim}),
                  TensorView(rstd.data(), DType::f32, device(), {c.rows}, {rstd_stride}), options);
          encoder.wait();
        }
        out.copy_to_host(y->data(), y->bytes());
        rstd.copy_to_host(all.data(), all.size() * sizeof(float));
        std::vector<float> values;
        for (std::size_t i = 0; i < all.size(); ++i) {
          if (i % std::size_t(rstd_stride) == 0) {
            values.push_back(all[i]);
          } else {
            EXPECT_EQ(all[i], kUntouched) << "rstd slot " << i << " between rows was written";
          }
        }
        return values;
      };
      for (const EpsMode mode : kModes) {
        const L2NormOptions options{.eps = 1e-6f, .scale = 0.75f, .eps_mode = mode};
        HostTensor same_y(input, x.count());
        const std::vector<float> same = rstd_of(input, options, &same_y);
        for (const DType output : kDTypes) {
          const std::string what = describe(input, output, options, c.rows, c.dim);
          HostTensor y(output, x.count());
          const std::vector<float> rstd = rstd_of(output, options, &y);
          EXPECT_EQ(std::memcmp(rstd.data(), same.data(), rstd.size() * sizeof(float)), 0)
              << what << ": rstd differs from the " << dtype_name(input) << " output's";
          EXPECT_TRUE(
              y.bitwise_equal(run_l2_norm_into(device(), x, output, c.rows, c.dim, options)))
              << what << ": the output differs from the form without rstd";
        }
      }
    }
  }
}

TEST_P(OutputDType, PrewarmTakesBothDTypes) {
  // A no-op on the CPU; on CUDA it compiles one representative pair.
  if (device().is_cpu()) {
    for (const DType input : kDTypes) {
      for (const DType output : kDTypes) {
        EXPECT_NO_THROW(prewarm_l2_norm(device(), input, output, 128)) << pair_name(input, output);
      }
    }
  } else {
    EXPECT_NO_THROW(prewarm_l2_norm(device(), DType::bf16, DType::f32, 128, {.scale = 0.5f}));
  }
  EXPECT_THROW(prewarm_l2_norm(device(), DType::bf16, DType::f32, 0), Error);
}

INSTANTIATE_TEST_SUITE_P(Backends, OutputDType, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, OutputDTypeViews, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

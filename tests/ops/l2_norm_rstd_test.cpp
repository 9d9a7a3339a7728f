// l2_norm's per-row rstd output on every backend: the value against a float64 reference, exactly
// the factor the output was scaled by, the output bit for bit what the form without rstd writes,
// strided views and a strided rstd, rows long enough for every CUDA kernel (rows, staged, split on
// chip, split streamed), zero, NaN, Inf, huge and tiny rows, determinism and every validation
// error.
#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
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

// A NaN pattern neither backend computes: rstd elements that must not be written keep it.
constexpr std::uint32_t kPoisonBits = 0x7fa5a5a5u;

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

std::string describe(DType dtype, const L2NormOptions& options, std::int64_t rows,
                     std::int64_t dim) {
  return std::string(dtype_name(dtype)) + " " + std::string(eps_mode_name(options.eps_mode)) +
         " eps " + std::to_string(options.eps) + " scale " + std::to_string(options.scale) + " " +
         std::to_string(rows) + "x" + std::to_string(dim);
}

// Views over an input storage and an output storage (the same one in place), as in
// strided_test.cpp, and rstd's stride.
struct Views {
  std::vector<std::int64_t> shape;
  std::int64_t storage;  // elements in the input storage and in the output storage
  std::int64_t in_offset;
  std::vector<std::int64_t> in_strides;
  std::int64_t out_offset;
  std::vector<std::int64_t> out_strides;
  bool in_place = false;
  std::int64_t rstd_stride = 1;
};

Views contiguous(std::int64_t rows, std::int64_t dim, std::int64_t rstd_stride = 1) {
  return {{rows, dim}, rows * dim, 0, {dim, 1}, 0, {dim, 1}, false, rstd_stride};
}

// What one dispatch with rstd gave: the rows of input and output gathered into rows x dim tensors
// (row-major over the leading dims), rstd per row, and the kernel that ran.
struct Result {
  HostTensor x;
  HostTensor y;
  std::vector<float> rstd;
  std::string variant;
};

std::int64_t rows_of(const std::vector<std::int64_t>& shape) {
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  return rows;
}

// The factor the documented formulas scale the row by, from its float64 sum of squares.
double reference_rstd(double sum, const L2NormOptions& options) {
  const double eps = options.eps;
  if (options.eps_mode == EpsMode::add) return 1.0 / std::sqrt(sum + eps);
  const double norm = std::sqrt(sum);
  return 1.0 / (norm < eps ? eps : norm);
}

float round_to(DType dtype, float value) {
  if (dtype == DType::f16) return f16_bits_to_f32(f32_to_f16_bits(value));
  if (dtype == DType::bf16) return bf16_bits_to_f32(f32_to_bf16_bits(value));
  return value;
}

// The budget in f32 ulps for a row whose f32 sum is used: docs/DESIGN.md's f32 output budget
// without its last multiply, (ceil(log2(dim)) + 2) / 2 + 1: each rounding of the squares, the
// sum's tree and eps costs rstd at most half an ulp through the square root, and the square root
// and the reciprocal half an ulp each.
double common_rstd_budget(std::int64_t dim) {
  return (std::ceil(std::log2(double(std::max<std::int64_t>(dim, 2)))) + 2.0) / 2.0 + 1.0;
}

// Checks rstd against the float64 reference and, on rows the f32 common path surely takes (their
// exact sum is far from its limits), that every output element is exactly round(x * rstd) (then
// times scale, rounded again): rstd is the f32 factor the row was scaled by. Rows the rare path
// surely takes get their f64 factor rounded once: within 1 ulp.
void expect_rstd(const Result& result, std::int64_t rows, std::int64_t dim,
                 const L2NormOptions& options, const std::string& what) {
  const DType dtype = result.x.dtype();
  std::size_t failures = 0;
  double worst = 0.0;
  const auto fail = [&](std::int64_t row, const std::string& message) {
    if (failures++ < 5) ADD_FAILURE() << what << " row " << row << ": " << message;
  };
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::size_t base = std::size_t(row * dim);
    double sum = 0.0;
    for (std::int64_t j = 0; j < dim; ++j) {
      const double value = result.x.get(base + std::size_t(j));
      sum += value * value;
    }
    const double expected = reference_rstd(sum, options);
    const float got = result.rstd[std::size_t(row)];
    if (std::isnan(expected) || std::isnan(got)) {
      if (std::isnan(expected) != std::isnan(got)) {
        fail(row, "rstd " + std::to_string(got) + ", expected " + std::to_string(expected));
      }
      continue;
    }
    if (expected > double(FLT_MAX) * (1.0 + 0x1p-23)) {
      if (got != kInf) fail(row, "rstd " + std::to_string(got) + ", expected +inf");
      continue;
    }
    const bool common = sum >= 0x1p-99 && sum <= 0x1p127;
    const bool rare = !std::isfinite(sum) || sum < 0x1p-101 || sum > 0x1p129;
    const double error = std::fabs(double(got) - expected) / ulp_at(expected, DType::f32);
    worst = std::max(worst, error);
    const double budget = common ? common_rstd_budget(dim) : 1.0;
    if ((common || rare) && !(error <= budget)) {
      fail(row, "rstd " + std::to_string(got) + " is " + std::to_string(error) +
                    " ulp from the float64 " + std::to_string(expected) + ", budget " +
                    std::to_string(budget));
    }
    if (!common) continue;
    for (std::int64_t j = 0; j < dim; ++j) {
      const float x = result.x.get(base + std::size_t(j));
      float y = round_to(dtype, x * got);
      if (options.scale != 1.0f) y = round_to(dtype, y * options.scale);
      const float stored = result.y.get(base + std::size_t(j));
      if (std::bit_cast<std::uint32_t>(stored) != std::bit_cast<std::uint32_t>(y)) {
        fail(row, "element " + std::to_string(j) + " is " + std::to_string(stored) +
                      ", not round(x * rstd) = " + std::to_string(y) + " (x " + std::to_string(x) +
                      ", rstd " + std::to_string(got) + ")");
        break;
      }
    }
  }
  EXPECT_EQ(failures, 0u) << what << " (worst rstd error " << worst << " ulp)";
}

class Rstd : public OnEveryBackend {
 protected:
  // Runs l2_norm with rstd over `views` whose input storage holds `values`, then again without
  // rstd on the same buffers: expects the two output storages bit for bit equal, rstd elements
  // between the rows' ones untouched, one dispatch. Returns the gathered rows and rstd.
  Result run(const HostTensor& values, const Views& views, const L2NormOptions& options,
             const std::string& what) {
    const DType dtype = values.dtype();
    const std::int64_t rows = rows_of(views.shape);
    const std::int64_t dim = views.shape.back();
    const std::size_t esize = dtype_size(dtype);

    Buffer input(device(), dtype, views.storage);
    Buffer output(device(), dtype, views.in_place ? 0 : views.storage);
    Buffer& target = views.in_place ? input : output;
    HostTensor poison(dtype, std::size_t(views.storage));
    poison.fill_poison();
    const auto reset = [&] {
      input.copy_from_host(values.data(), values.bytes());
      if (!views.in_place) output.copy_from_host(poison.data(), poison.bytes());
    };
    const auto view = [&](Buffer& buffer, std::int64_t offset,
                          const std::vector<std::int64_t>& strides) {
      return TensorView(static_cast<std::byte*>(buffer.data()) + offset * std::int64_t(esize),
                        dtype, device(), views.shape, strides);
    };
    const TensorView in_view = view(input, views.in_offset, views.in_strides);
    const TensorView out_view = view(target, views.out_offset, views.out_strides);

    const std::int64_t rstd_count = (rows - 1) * views.rstd_stride + 1;
    std::vector<std::uint32_t> rstd_bits(std::size_t(rstd_count), kPoisonBits);
    Buffer rstd(device(), DType::f32, rstd_count);
    rstd.copy_from_host(rstd_bits.data(), rstd_bits.size() * 4);
    const TensorView rstd_view(rstd.data(), DType::f32, device(), {rows}, {views.rstd_stride});

    Result result{HostTensor(dtype, std::size_t(rows * dim)),
                  HostTensor(dtype, std::size_t(rows * dim)),
                  {},
                  {}};
    reset();
    HostTensor with_rstd(dtype, std::size_t(views.storage));
    {
      CommandEncoder encoder(device());
      l2_norm(encoder, in_view, out_view, rstd_view, options);
      EXPECT_EQ(encoder.recorded().size(), 1u) << what;
      if (!encoder.recorded().empty()) result.variant = encoder.recorded()[0].variant;
      encoder.wait();
    }
    target.copy_to_host(with_rstd.data(), with_rstd.bytes());
    rstd.copy_to_host(rstd_bits.data(), rstd_bits.size() * 4);

    reset();
    HostTensor without_rstd(dtype, std::size_t(views.storage));
    {
      CommandEncoder encoder(device());
      l2_norm(encoder, in_view, out_view, options);
      EXPECT_EQ(encoder.recorded().size(), 1u) << what;
      if (!encoder.recorded().empty()) {
        EXPECT_EQ(encoder.recorded()[0].variant, result.variant) << what;
      }
      encoder.wait();
    }
    target.copy_to_host(without_rstd.data(), without_rstd.bytes());
    EXPECT_TRUE(with_rstd.bitwise_equal(without_rstd))
        << what << ": the output differs from the form without rstd";

    std::size_t clobbered = 0;
    for (std::int64_t i = 0; i < rstd_count; ++i) {
      const bool a_row = views.rstd_stride == 0 || i % views.rstd_stride == 0;
      if (!a_row) clobbered += rstd_bits[std::size_t(i)] != kPoisonBits;
    }
    EXPECT_EQ(clobbered, 0u) << what << ": rstd elements between the rows' ones changed";
    for (std::int64_t row = 0; row < rows; ++row) {
      result.rstd.push_back(std::bit_cast<float>(rstd_bits[std::size_t(row * views.rstd_stride)]));
    }

    // Gather the rows through the same index arithmetic a user would write.
    for (std::int64_t r = 0; r < rows; ++r) {
      std::int64_t rest = r, in_row = views.in_offset, out_row = views.out_offset;
      for (int d = int(views.shape.size()) - 2; d >= 0; --d) {
        const std::int64_t i = rest % views.shape[std::size_t(d)];
        rest /= views.shape[std::size_t(d)];
        in_row += i * views.in_strides[std::size_t(d)];
        out_row += i * views.out_strides[std::size_t(d)];
      }
      for (std::int64_t j = 0; j < dim; ++j) {
        result.x.set(std::size_t(r * dim + j), values.get(std::size_t(in_row + j)));
        result.y.set(std::size_t(r * dim + j), with_rstd.get(std::size_t(out_row + j)));
      }
    }
    return result;
  }

  // Contiguous rows x dim of `values` with rstd at `rstd_stride`, checked against the reference.
  Result check(const HostTensor& values, std::int64_t rows, std::int64_t dim,
               const L2NormOptions& options, std::int64_t rstd_stride = 1) {
    const std::string what = describe(values.dtype(), options, rows, dim) + " rstd stride " +
                             std::to_string(rstd_stride);
    Result result = run(values, contiguous(rows, dim, rstd_stride), options, what);
    expect_rstd(result, rows, dim, options, what);
    expect_within_budget(result.y, reference_l2_norm(result.x, rows, dim, options), dim,
                         options.scale != 1.0f, what.c_str());
    return result;
  }
};

TEST_P(Rstd, MatchesTheReferenceInEveryDTypeAndMode) {
  for_each_swept_shape(101,
                       [&](const HostTensor& values, std::int64_t rows, std::int64_t dim,
                           const L2NormOptions& options) { check(values, rows, dim, options); });
}

// rstd is the factor before scale: the same values with any scale, and the scaled output is
// round(round(x * rstd) * scale).
TEST_P(Rstd, ExcludesScale) {
  for (const DType dtype : kDTypes) {
    for (const EpsMode mode : kModes) {
      const std::int64_t rows = 21, dim = 256;
      const HostTensor values = random_tensor(dtype, std::size_t(rows * dim), 7);
      const Result plain = check(values, rows, dim, {.eps = 1e-6f, .eps_mode = mode});
      for (const float scale : {0.0883883476f, -3.0f, 0.0f}) {
        const Result scaled =
            check(values, rows, dim, {.eps = 1e-6f, .scale = scale, .eps_mode = mode});
        EXPECT_EQ(std::memcmp(plain.rstd.data(), scaled.rstd.data(), plain.rstd.size() * 4), 0)
            << dtype_name(dtype) << " " << eps_mode_name(mode) << " scale " << scale;
      }
    }
  }
}

TEST_P(Rstd, StridedRstd) {
  for (const DType dtype : kDTypes) {
    for (const std::int64_t stride : {2, 3, 1000}) {
      const std::int64_t rows = 50, dim = 100;
      const HostTensor values = random_tensor(dtype, std::size_t(rows * dim), 13);
      check(values, rows, dim, {.eps_mode = EpsMode::clamp}, stride);
    }
  }
  // One row: any stride, 0 included, addresses the one value.
  const HostTensor values = random_tensor(DType::f32, 300, 14);
  check(values, 1, 300, {}, 0);
  check(values, 1, 300, {}, 7);
}

TEST_P(Rstd, QAndKSlicesOfAPackedProjection) {
  // qkv projection [T, 3, H, D]: q = [:, 0] into a contiguous output, k = [:, 1] in place, both
  // seen as [T, H, D]; rstd holds T * H values in (t, h) order, at stride 3.
  constexpr std::int64_t T = 37, H = 4, D = 128;
  for (const DType dtype : kDTypes) {
    const HostTensor values = random_tensor(dtype, std::size_t(T * 3 * H * D), 17);
    const std::vector<std::int64_t> shape{T, H, D};
    const L2NormOptions q_options{.eps = 1e-6f, .scale = 0.0883883476f};
    const Views q{shape, T * 3 * H * D, 0, {3 * H * D, D, 1}, 0, {H * D, D, 1}, false, 3};
    const std::string q_what = "q " + describe(dtype, q_options, T * H, D);
    expect_rstd(run(values, q, q_options, q_what), T * H, D, q_options, q_what);
    const L2NormOptions k_options{.eps_mode = EpsMode::clamp};
    const Views k{shape, T * 3 * H * D,     H * D, {3 * H * D, D, 1},
                  H * D, {3 * H * D, D, 1}, true,  3};
    const std::string k_what = "k in place " + describe(dtype, k_options, T * H, D);
    expect_rstd(run(values, k, k_options, k_what), T * H, D, k_options, k_what);
  }
  // Storage [B, H, T, D] viewed as [B, T, H, D]: no two leading dims merge (outer rank 3).
  constexpr std::int64_t B = 2, T2 = 5, H2 = 3, D2 = 96;
  const HostTensor values = random_tensor(DType::bf16, std::size_t(B * H2 * T2 * D2), 19);
  const Views permuted{{B, T2, H2, D2},
                       B * H2 * T2 * D2,
                       0,
                       {H2 * T2 * D2, D2, T2 * D2, 1},
                       0,
                       {T2 * H2 * D2, H2 * D2, D2, 1},
                       false,
                       2};
  expect_rstd(run(values, permuted, {}, "rank 4 permuted"), B * T2 * H2, D2, {}, "rank 4 permuted");
  // A row stride that is not a multiple of any vector width.
  const HostTensor padded = random_tensor(DType::f32, std::size_t(50 * 131), 23);
  const Views odd{{50, 128}, 50 * 131, 1, {131, 1}, 2, {131, 1}, false, 3};
  expect_rstd(run(padded, odd, {}, "row stride 131"), 50, 128, {}, "row stride 131");
}

// Rows long enough for every CUDA kernel, each with its variant checked (the planner's choices on
// an H200 or H100: 132 multiprocessors, 227 KiB of shared memory per block): 200 rows of 20000 f32
// (2 tiles, a row for every multiprocessor: staged), 4 rows of 70000 f32 and bf16 (split on chip,
// the row summed by every warp), 2 rows of 2^23 f32 (split on chip, 512 tiles summed by the block)
// and 2 rows of 2^24 f32 (more than 132 blocks hold on chip: split streamed). A rare row in each
// batch (row 1, scaled by 1e-30) and a zero row (the last, in batches of more than two) take the
// rare path. The CPU runs the rows of up to 70000 elements (one row loop for every length).
TEST_P(Rstd, LongRowsOnEveryKernel) {
  struct Case {
    DType dtype;
    std::int64_t rows;
    std::int64_t dim;
    L2NormOptions options;
    const char* cuda_kernel;
  };
  const Case cases[] = {
      {DType::f32, 200, 20000, {.eps = 1e-6f}, "l2_norm_staged<"},
      {DType::f32,
       4,
       70000,
       {.eps = 1e-12f, .scale = 0.75f, .eps_mode = EpsMode::clamp},
       "l2_norm_split_on_chip<"},
      {DType::bf16, 4, 70000, {.eps = 1e-6f}, "l2_norm_split_on_chip<"},
      {DType::f32, 2, std::int64_t{1} << 23, {.eps = 1e-6f}, "l2_norm_split_on_chip<"},
      {DType::f32, 2, std::int64_t{1} << 24, {.eps = 1e-6f}, "l2_norm_split_streamed<"},
  };
  for (const Case& c : cases) {
    if (device().is_cpu() && c.dim > 100000) continue;
    HostTensor values = random_tensor(c.dtype, std::size_t(c.rows * c.dim), 29);
    for (std::int64_t j = 0; j < c.dim; ++j) {
      const auto at = [&](std::int64_t row) { return std::size_t(row * c.dim + j); };
      values.set(at(1), values.get(at(1)) * 1e-30f);
      if (c.rows > 2) values.set(at(c.rows - 1), 0.0f);
    }
    const Result result = check(values, c.rows, c.dim, c.options);
    const std::string what = describe(c.dtype, c.options, c.rows, c.dim);
    if (device().is_cuda()) {
      EXPECT_TRUE(starts_with(result.variant, c.cuda_kernel)) << what << ": " << result.variant;
    } else {
      EXPECT_TRUE(starts_with(result.variant, "cpu.l2_norm<")) << what << ": " << result.variant;
    }
    // Determinism: the same rstd bits and output bits again.
    const Result again = run(values, contiguous(c.rows, c.dim), c.options, what);
    EXPECT_EQ(std::memcmp(result.rstd.data(), again.rstd.data(), result.rstd.size() * 4), 0)
        << what << ": rstd changed from run to run";
    EXPECT_TRUE(result.y.bitwise_equal(again.y)) << what << ": output changed from run to run";
  }
}

// The rows of docs/DESIGN.md "Semantics" in one batch, on every kernel shape: rstd is the factor
// the row was scaled by, so a zero row gets 1/sqrt(eps) (add) or 1/eps (clamp), +inf with
// eps == 0; a NaN row NaN; an Inf row 0; a huge row its f64 factor rounded; a tiny row with
// eps == 0 its f64 factor, which overflows f32 to +inf.
TEST_P(Rstd, SpecialRows) {
  struct Row {
    std::vector<float> values;
    const char* name;
  };
  const Row special[] = {{{}, "zero"},
                         {{1.0f, kNaN, 2.0f}, "NaN"},
                         {{kInf, 1.0f, -2.0f}, "Inf"},
                         {{-kInf, kNaN}, "Inf and NaN"},
                         {{3e20f, 4e20f}, "huge"},
                         {{1e-40f, 1e-40f}, "tiny"},
                         {{3.0f, 4.0f}, "normal"}};
  constexpr std::int64_t kRows = sizeof(special) / sizeof(special[0]);
  for (const std::int64_t dim : {2, 128, 5000, 70000}) {
    for (const DType dtype : kDTypes) {
      for (const EpsMode mode : kModes) {
        for (const float eps : {0.0f, 1e-6f}) {
          HostTensor values(dtype, std::size_t(kRows * dim));
          for (std::int64_t i = 0; i < kRows * dim; ++i) values.set(std::size_t(i), 0.0f);
          // The first `dim` of each row's values (dim 2 drops the third).
          for (std::int64_t row = 0; row < kRows; ++row) {
            const std::vector<float>& row_values = special[row].values;
            for (std::size_t j = 0; j < row_values.size() && j < std::size_t(dim); ++j) {
              values.set(std::size_t(row * dim) + j, row_values[j]);
            }
          }
          const L2NormOptions options{.eps = eps, .scale = 2.5f, .eps_mode = mode};
          const std::string what = describe(dtype, options, kRows, dim);
          const Result result = run(values, contiguous(kRows, dim), options, what);
          expect_rstd(result, kRows, dim, options, what);
          const auto rstd = [&](int row) { return result.rstd[std::size_t(row)]; };
          const float zero_rstd = eps == 0.0f            ? kInf
                                  : mode == EpsMode::add ? float(1.0 / std::sqrt(double(eps)))
                                                         : float(1.0 / double(eps));
          EXPECT_EQ(rstd(0), zero_rstd) << what << " zero row";
          EXPECT_TRUE(std::isnan(rstd(1))) << what << " NaN row: " << rstd(1);
          EXPECT_EQ(std::bit_cast<std::uint32_t>(rstd(2)), 0u) << what << " Inf row: " << rstd(2);
          EXPECT_TRUE(std::isnan(rstd(3))) << what << " Inf and NaN row: " << rstd(3);
          if (dtype != DType::f16) {  // f16 holds neither 3e20 nor 1e-40
            // bf16 rounds 3e20 and 4e20 by up to 0.4%.
            EXPECT_NEAR(double(rstd(4)) * 5e20, 1.0, 1e-2) << what << " huge row: " << rstd(4);
            if (eps == 0.0f) {
              EXPECT_EQ(rstd(5), kInf) << what << " tiny row";
            }
          }
          if (eps == 0.0f || mode == EpsMode::clamp) {
            EXPECT_EQ(rstd(6), 0.2f) << what << " [3, 4]";
          }
        }
      }
    }
  }
}

// ---- validation: Error(invalid_argument), the message naming the values, nothing recorded ----

template <typename Call>
void expect_error(Call&& call, std::initializer_list<const char*> fragments) {
  try {
    call();
    ADD_FAILURE() << "no error thrown; expected one containing " << *fragments.begin();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << error.what();
    for (const char* fragment : fragments) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
          << "message '" << error.what() << "' lacks '" << fragment << "'";
    }
  }
}

TEST_P(Rstd, RejectsWrongDTypeSizeAndRank) {
  Buffer in(device(), DType::f32, 32), out(device(), DType::f32, 32);
  Buffer r(device(), DType::f32, 8), half(device(), DType::bf16, 8);
  CommandEncoder encoder(device());
  const TensorView x = in.view({2, 4, 4}), y = out.view({2, 4, 4});
  expect_error([&] { l2_norm(encoder, x, y, half.view({8})); },
               {"l2_norm: rstd dtype bf16 must be f32"});
  expect_error(
      [&] { l2_norm(encoder, x, y, TensorView(r.data(), DType::f32, device(), {7})); },
      {"l2_norm: rstd has 7 values, expected one per row: 8 rows in input shape [2, 4, 4]"});
  expect_error(
      [&] {
        l2_norm(encoder, x, y, r.view({2, 4}));
      },
      {"l2_norm: rstd must be 1-D with one value per row, got shape [2, 4]"});
  expect_error([&] { l2_norm(encoder, x, y, r.view({8}), {.eps = -1.0f}); }, {"eps"});
  EXPECT_TRUE(encoder.recorded().empty());
}

TEST_P(Rstd, RejectsBadStrides) {
  Buffer in(device(), DType::f32, 32), out(device(), DType::f32, 32), r(device(), DType::f32, 8);
  CommandEncoder encoder(device());
  const TensorView x = in.view({8, 4}), y = out.view({8, 4});
  auto* last = static_cast<float*>(r.data()) + 7;
  expect_error([&] { l2_norm(encoder, x, y, TensorView(last, DType::f32, device(), {8}, {-1})); },
               {"l2_norm: rstd stride -1 is negative"});
  expect_error(
      [&] { l2_norm(encoder, x, y, TensorView(r.data(), DType::f32, device(), {8}, {0})); },
      {"l2_norm: rstd stride is 0 for 8 rows"});
  auto* misaligned = static_cast<std::byte*>(r.data()) + 2;
  expect_error(
      [&] {
        l2_norm(encoder, TensorView(in.data(), DType::f32, device(), {1, 4}),
                TensorView(out.data(), DType::f32, device(), {1, 4}),
                TensorView(misaligned, DType::f32, device(), {1}));
      },
      {"l2_norm: rstd pointer is not aligned to its 4-byte elements"});
  expect_error([&] { l2_norm(encoder, x, y, TensorView(nullptr, DType::f32, device(), {8})); },
               {"l2_norm: rstd data pointer is null"});
  // The input's and output's extents are checked as in the form without rstd.
  expect_error(
      [&] {
        l2_norm(encoder, TensorView(in.data(), DType::f32, device(), {8, 4}, {1LL << 62, 1}), y,
                r.view({8}));
      },
      {"l2_norm: input spans more than"});
  EXPECT_TRUE(encoder.recorded().empty());
}

TEST_P(Rstd, RejectsOverlapWithInputOrOutput) {
  Buffer in(device(), DType::f32, 40), out(device(), DType::f32, 40);
  // The call that passes runs: its input is defined (compute-sanitizer initcheck).
  const std::vector<float> ones(40, 1.0f);
  in.copy_from_host(ones.data(), ones.size() * sizeof(float));
  CommandEncoder encoder(device());
  const TensorView x(in.data(), DType::f32, device(), {8, 4});
  const TensorView y(out.data(), DType::f32, device(), {8, 4});
  auto* out_tail = static_cast<float*>(out.data()) + 31;  // the output's last element
  expect_error([&] { l2_norm(encoder, x, y, TensorView(out_tail, DType::f32, device(), {8})); },
               {"l2_norm: rstd overlaps output"});
  expect_error([&] { l2_norm(encoder, x, x, TensorView(in.data(), DType::f32, device(), {8})); },
               {"l2_norm: rstd overlaps input"});
  // A one-element row: rstd exactly the input's one element.
  const TensorView single(in.data(), DType::f32, device(), {1});
  const TensorView single_out(out.data(), DType::f32, device(), {1});
  expect_error([&] { l2_norm(encoder, single, single_out, single); }, {"rstd overlaps input"});
  // Past the output's last element, no overlap.
  auto* after = static_cast<float*>(out.data()) + 32;
  EXPECT_NO_THROW(l2_norm(encoder, x, y, TensorView(after, DType::f32, device(), {8})));
  EXPECT_EQ(encoder.recorded().size(), 1u);
  encoder.wait();
}

TEST_P(Rstd, RejectsDeviceMismatch) {
  Buffer in(device(), DType::f32, 8), out(device(), DType::f32, 8), r(device(), DType::f32, 2);
  CommandEncoder encoder(device());
  const Device other = device().is_cpu() ? Device::cuda(0) : Device::cpu();
  const TensorView elsewhere(r.data(), DType::f32, other, {2});
  expect_error(
      [&] {
        l2_norm(encoder, in.view({2, 4}), out.view({2, 4}), elsewhere);
      },
      {"l2_norm: rstd is on", "but input is on"});
  EXPECT_TRUE(encoder.recorded().empty());
}

TEST_P(Rstd, ErrorLeavesRstdUntouchedAndEmptyBatchIsANoOp) {
  Buffer in(device(), DType::f32, 8), out(device(), DType::f32, 8), r(device(), DType::f32, 2);
  const std::uint32_t before[2] = {kPoisonBits, kPoisonBits};
  r.copy_from_host(before, sizeof before);
  CommandEncoder encoder(device());
  EXPECT_THROW(l2_norm(encoder, in.view({2, 4}), out.view({2, 4}), r.view({2}), {.scale = kInf}),
               Error);
  const TensorView empty(in.data(), DType::f32, device(), {0, 8});
  const TensorView no_rstd(r.data(), DType::f32, device(), {0});
  l2_norm(encoder, empty, empty, no_rstd);
  encoder.wait();
  EXPECT_TRUE(encoder.recorded().empty());
  std::uint32_t after[2] = {};
  r.copy_to_host(after, sizeof after);
  EXPECT_EQ(std::memcmp(before, after, sizeof before), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, Rstd, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

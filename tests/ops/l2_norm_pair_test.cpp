// l2_norm_pair on every backend: each target bit for bit what its own l2_norm call writes (output
// and rstd), for q and k sliced out of a fused projection (equal and grouped head counts), targets
// of different dtypes, dims, eps modes and scales, in place, rows too long for one launch, an
// empty target, zero/NaN/Inf/huge/tiny rows, determinism, one dispatch, and every validation
// error of the pair with nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

// One target over its own device storages: an input storage (values), an output storage (poison,
// or the input storage itself in place), an rstd storage (poison), and the views into them.
struct TargetSpec {
  DType dtype = DType::bf16;
  std::vector<std::int64_t> shape;
  std::int64_t storage = 0;  // elements of the input (and output) storage
  std::int64_t in_offset = 0;
  std::vector<std::int64_t> in_strides;
  std::int64_t out_offset = 0;
  std::vector<std::int64_t> out_strides;
  bool in_place = false;
  bool with_rstd = false;
  L2NormOptions options = {};
  std::uint64_t seed = 1;
  std::optional<DType> out_dtype = std::nullopt;  // the input's when empty
  DType output_dtype() const { return out_dtype.value_or(dtype); }
};

TargetSpec contiguous(DType dtype, std::int64_t rows, std::int64_t dim, L2NormOptions options,
                      bool with_rstd, std::uint64_t seed) {
  return {dtype,    {rows, dim}, rows * dim, 0,       {dim, 1}, 0,
          {dim, 1}, false,       with_rstd,  options, seed};
}

std::int64_t rows_of(const TargetSpec& spec) {
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < spec.shape.size(); ++d) rows *= spec.shape[d];
  return rows;
}

// The host copies of a target's storages after a run.
struct Storages {
  HostTensor output;
  std::vector<float> rstd;
};

class Target {
 public:
  Target(const Device& device, const TargetSpec& spec, const HostTensor& values)
      : spec_(spec),
        values_(values),
        input_(device, spec.dtype, spec.storage),
        output_(device, spec.output_dtype(), spec.in_place ? 0 : spec.storage),
        rstd_(device, DType::f32, std::max<std::int64_t>(rows_of(spec), 1)) {
    reset();
  }

  void reset() {
    input_.copy_from_host(values_.data(), values_.bytes());
    if (!spec_.in_place) {
      HostTensor poison(spec_.output_dtype(), std::size_t(spec_.storage));
      poison.fill_poison();
      output_.copy_from_host(poison.data(), poison.bytes());
    }
    const std::vector<float> poison_rstd(std::size_t(rstd_.count()),
                                         std::numeric_limits<float>::quiet_NaN());
    rstd_.copy_from_host(poison_rstd.data(), poison_rstd.size() * 4);
  }

  TensorView view(bool output) const {
    const Buffer& buffer = output && !spec_.in_place ? output_ : input_;
    const std::int64_t offset = output ? spec_.out_offset : spec_.in_offset;
    const auto& strides = output ? spec_.out_strides : spec_.in_strides;
    const DType dtype = output ? spec_.output_dtype() : spec_.dtype;
    return TensorView(
        static_cast<std::byte*>(buffer.data()) + offset * std::int64_t(dtype_size(dtype)), dtype,
        buffer.device(), spec_.shape, strides);
  }
  TensorView rstd_view() const {
    return TensorView(rstd_.data(), DType::f32, rstd_.device(), {rows_of(spec_)});
  }
  L2NormTarget target() const {
    L2NormTarget target{view(false), view(true)};
    if (spec_.with_rstd) target.rstd = rstd_view();
    target.options = spec_.options;
    return target;
  }
  Storages read() const {
    Storages result{HostTensor(spec_.output_dtype(), std::size_t(spec_.storage)),
                    std::vector<float>(std::size_t(rstd_.count()))};
    (spec_.in_place ? input_ : output_).copy_to_host(result.output.data(), result.output.bytes());
    rstd_.copy_to_host(result.rstd.data(), result.rstd.size() * 4);
    return result;
  }
  // Its own l2_norm call, in `encoder`.
  void run_alone(CommandEncoder& encoder) const {
    if (spec_.with_rstd) {
      l2_norm(encoder, view(false), view(true), rstd_view(), spec_.options);
    } else {
      l2_norm(encoder, view(false), view(true), spec_.options);
    }
  }

 private:
  TargetSpec spec_;
  HostTensor values_;
  Buffer input_;
  Buffer output_;
  Buffer rstd_;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

class L2NormPair : public OnEveryBackend {
 protected:
  // Runs the pair (twice, for determinism) and each target's own l2_norm call on fresh copies of
  // the same storages; expects one dispatch and every storage bit for bit equal. Returns the
  // pair's variant name.
  std::string expect_as_two_calls(const TargetSpec& a, const TargetSpec& b, const std::string& what,
                                  const HostTensor* a_values = nullptr,
                                  const HostTensor* b_values = nullptr) {
    const HostTensor va =
        a_values ? *a_values : random_tensor(a.dtype, std::size_t(a.storage), a.seed);
    const HostTensor vb =
        b_values ? *b_values : random_tensor(b.dtype, std::size_t(b.storage), b.seed);
    Target first(device(), a, va);
    Target second(device(), b, vb);
    std::string variant;
    std::optional<Storages> pair_first, pair_second;
    for (int run = 0; run < 2; ++run) {
      first.reset();
      second.reset();
      CommandEncoder encoder(device());
      l2_norm_pair(encoder, first.target(), second.target());
      EXPECT_EQ(encoder.recorded().size(), 1u) << what;
      if (!encoder.recorded().empty()) {
        variant = encoder.recorded()[0].variant;
        EXPECT_EQ(encoder.recorded()[0].op, "l2_norm_pair") << what;
      }
      encoder.wait();
      Storages s1 = first.read(), s2 = second.read();
      if (run == 1) {
        EXPECT_TRUE(s1.output.bitwise_equal(pair_first->output)) << what << ": not deterministic";
        EXPECT_TRUE(s2.output.bitwise_equal(pair_second->output)) << what << ": not deterministic";
      }
      pair_first = std::move(s1);
      pair_second = std::move(s2);
    }
    first.reset();
    second.reset();
    {
      CommandEncoder encoder(device());
      first.run_alone(encoder);
      second.run_alone(encoder);
      encoder.wait();
    }
    const Storages alone_first = first.read(), alone_second = second.read();
    EXPECT_TRUE(pair_first->output.bitwise_equal(alone_first.output))
        << what << ": the first output differs from its l2_norm call (" << variant << ")";
    EXPECT_TRUE(pair_second->output.bitwise_equal(alone_second.output))
        << what << ": the second output differs from its l2_norm call (" << variant << ")";
    EXPECT_TRUE(same_bits(pair_first->rstd, alone_first.rstd))
        << what << ": the first rstd differs from its l2_norm call (" << variant << ")";
    EXPECT_TRUE(same_bits(pair_second->rstd, alone_second.rstd))
        << what << ": the second rstd differs from its l2_norm call (" << variant << ")";
    return variant;
  }
};

// q and k of a Gated DeltaNet layer: one projection [T, (Hq + Hk + Hv) * D], q scaled by
// 1 / sqrt(D) and k not, normalized into contiguous outputs (or k in place), with and without rstd,
// decode and prefill token counts, equal and grouped (GQA) head counts.
TEST_P(L2NormPair, QAndKOfAFusedProjection) {
  constexpr std::int64_t D = 128;
  for (const DType dtype : kDTypes) {
    for (const std::int64_t tokens : {1, 32, 300}) {
      for (const auto& [hq, hk] : {std::pair<std::int64_t, std::int64_t>{4, 4}, {8, 2}}) {
        for (const bool with_rstd : {false, true}) {
          for (const bool k_in_place : {false, true}) {
            const std::int64_t row = (hq + 2 * hk) * D;
            const L2NormOptions q_options{.eps = 1e-6f, .scale = 1.0f / std::sqrt(float(D))};
            const L2NormOptions k_options{.eps = 1e-6f};
            const TargetSpec q{dtype, {tokens, hq, D}, tokens * row, 0,         {row, D, 1},
                               0,     {hq * D, D, 1},  false,        with_rstd, q_options,
                               11};
            const TargetSpec k{dtype,
                               {tokens, hk, D},
                               tokens * row,
                               hq * D,
                               {row, D, 1},
                               k_in_place ? hq * D : 0,
                               k_in_place ? std::vector<std::int64_t>{row, D, 1}
                                          : std::vector<std::int64_t>{hk * D, D, 1},
                               k_in_place,
                               with_rstd,
                               k_options,
                               12};
            const std::string what = std::string(dtype_name(dtype)) +
                                     " T=" + std::to_string(tokens) + " Hq=" + std::to_string(hq) +
                                     " Hk=" + std::to_string(hk) + (with_rstd ? " rstd" : "") +
                                     (k_in_place ? " k in place" : "");
            const std::string variant = expect_as_two_calls(q, k, what);
            if (device().is_cuda()) {
              EXPECT_EQ(variant.rfind("l2_norm_pair<", 0), 0u) << what << ": " << variant;
            }
          }
        }
      }
    }
  }
}

// Targets that share nothing but the dispatch: dtypes, dims (aligned and not), eps modes, eps
// and scale all differ.
TEST_P(L2NormPair, TargetsOfDifferentDTypesDimsAndOptions) {
  struct Case {
    DType a_dtype;
    std::int64_t a_rows, a_dim;
    L2NormOptions a_options;
    DType b_dtype;
    std::int64_t b_rows, b_dim;
    L2NormOptions b_options;
  };
  const Case cases[] = {
      {DType::f32, 7, 64, {.eps = 1e-12f, .eps_mode = EpsMode::clamp}, DType::bf16, 40, 256, {}},
      {DType::f16, 33, 3, {.scale = -2.5f}, DType::f32, 5, 100, {.eps = 0.0f}},
      {DType::bf16, 1, 16384, {}, DType::f16, 129, 1000, {.eps_mode = EpsMode::clamp}},
      {DType::f32, 300, 1, {}, DType::f32, 2, 4096, {.scale = 3.0f, .eps_mode = EpsMode::clamp}},
  };
  for (const Case& c : cases) {
    for (const bool with_rstd : {false, true}) {
      const std::string what = std::string(dtype_name(c.a_dtype)) + " " + std::to_string(c.a_rows) +
                               "x" + std::to_string(c.a_dim) + " + " +
                               std::string(dtype_name(c.b_dtype)) + " " + std::to_string(c.b_rows) +
                               "x" + std::to_string(c.b_dim) + (with_rstd ? " rstd" : "");
      const std::string variant = expect_as_two_calls(
          contiguous(c.a_dtype, c.a_rows, c.a_dim, c.a_options, with_rstd, 21),
          contiguous(c.b_dtype, c.b_rows, c.b_dim, c.b_options, with_rstd, 22), what);
      if (device().is_cuda()) {
        EXPECT_EQ(variant.rfind("l2_norm_pair<", 0), 0u) << what;
      }
    }
  }
}

// Each target writes its own output dtype (training: bf16 q and k into f32, or f32 into bf16).
TEST_P(L2NormPair, OutputDTypesApartFromTheInputs) {
  for (const DType in : kDTypes) {
    for (const DType out : kDTypes) {
      for (const bool with_rstd : {false, true}) {
        TargetSpec a = contiguous(in, 40, 128, {.scale = 0.125f}, with_rstd, 61);
        a.out_dtype = out;
        TargetSpec b = contiguous(out, 9, 96, {.eps_mode = EpsMode::clamp}, with_rstd, 62);
        b.out_dtype = in;
        const std::string what = std::string(dtype_name(in)) + "->" + std::string(dtype_name(out)) +
                                 (with_rstd ? " rstd" : "");
        const std::string variant = expect_as_two_calls(a, b, what);
        if (device().is_cuda()) {
          EXPECT_EQ(variant.rfind("l2_norm_pair<", 0), 0u) << what;
        }
      }
    }
  }
}

// Misaligned pointers and odd strides: each target takes its own (unaligned) variant.
TEST_P(L2NormPair, MisalignedViews) {
  for (const DType dtype : kDTypes) {
    const TargetSpec a{dtype, {9, 130}, 9 * 133 + 1, 1, {133, 1}, 3, {131, 1}, false, true, {}, 31};
    const TargetSpec b = contiguous(dtype, 17, 128, {.scale = 0.5f}, true, 32);
    expect_as_two_calls(a, b, std::string(dtype_name(dtype)) + " misaligned + aligned");
  }
}

// Rows longer than the rows kernel take: each target as its own l2_norm launch on CUDA, in one
// dispatch, still bit for bit.
TEST_P(L2NormPair, LongRows) {
  const std::string variant = expect_as_two_calls(
      contiguous(DType::f32, 3, 20000, {}, true, 41),
      contiguous(DType::bf16, 64, 128, {.scale = 0.25f}, true, 42), "20000 + 128");
  if (device().is_cuda()) {
    EXPECT_NE(variant.find('+'), std::string::npos) << variant;
  }
}

TEST_P(L2NormPair, SpecialRows) {
  constexpr std::int64_t kDim = 128;
  for (const DType dtype : kDTypes) {
    for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
      const std::vector<float> row_values = {0.0f, kNaN, kInf, 3e38f, 1e-30f, 1e-40f, 1.0f};
      const auto rows = std::int64_t(row_values.size());
      HostTensor values(dtype, std::size_t(rows * kDim));
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < kDim; ++j) {
          const float v = j % 5 == 0 || r != 1 ? row_values[std::size_t(r)] : 0.5f;
          values.set(std::size_t(r * kDim + j), (j % 2 ? -v : v));
        }
      }
      const L2NormOptions options{.eps = 1e-6f, .eps_mode = mode};
      const TargetSpec a = contiguous(dtype, rows, kDim, options, true, 0);
      TargetSpec b = contiguous(dtype, rows, kDim, {.scale = 0.125f, .eps_mode = mode}, true, 0);
      expect_as_two_calls(
          a, b, std::string(dtype_name(dtype)) + " special " + std::string(eps_mode_name(mode)),
          &values, &values);
    }
  }
}

// A target with zero rows (no tokens) is skipped; the other runs as its l2_norm call.
TEST_P(L2NormPair, EmptyTarget) {
  for (const bool first_empty : {true, false}) {
    const TargetSpec empty{DType::bf16, {0, 4, 128}, 1,  0, {512, 128, 1}, 0, {512, 128, 1},
                           false,       false,       {}, 1};
    const TargetSpec full = contiguous(DType::bf16, 10, 128, {}, true, 51);
    const HostTensor empty_values(DType::bf16, 1);
    const std::string variant =
        first_empty ? expect_as_two_calls(empty, full, "empty first", &empty_values)
                    : expect_as_two_calls(full, empty, "empty second", nullptr, &empty_values);
    EXPECT_EQ(variant.find("l2_norm_pair<"), std::string::npos) << variant;
  }
  // Both empty: nothing recorded.
  Buffer storage(device(), DType::f32, 8);
  const TensorView none(storage.data(), DType::f32, device(), {0, 8});
  CommandEncoder encoder(device());
  l2_norm_pair(encoder, {none, none}, {none, none});
  EXPECT_TRUE(encoder.recorded().empty());
}

class L2NormPairValidation : public OnEveryBackend {
 protected:
  static constexpr std::int64_t kRows = 4;
  static constexpr std::int64_t kDim = 8;

  void SetUp() override {
    OnEveryBackend::SetUp();
    if (IsSkipped()) return;
    storage_.emplace(device(), DType::f32, 8 * kRows * kDim);
    std::vector<float> values(std::size_t(8 * kRows * kDim), 1.0f);
    // Outputs (slots 2, 3, 6) and rstd (slot 7) hold NaN: nothing may be written on error.
    for (const int slot : {2, 3, 6, 7}) {
      for (std::int64_t i = 0; i < kRows * kDim; ++i) {
        values[std::size_t(slot * kRows * kDim + i)] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    storage_->copy_from_host(values.data(), values.size() * 4);
    initial_ = values;
  }
  void TearDown() override {
    if (!storage_) return;
    std::vector<float> now(initial_.size());
    storage_->copy_to_host(now.data(), now.size() * 4);
    EXPECT_EQ(std::memcmp(now.data(), initial_.data(), now.size() * 4), 0)
        << "a failed call wrote memory";
  }

  // A [kRows, kDim] f32 view of slot `slot` (kRows * kDim elements each), shifted by `shift`.
  TensorView view(int slot, std::int64_t shift = 0) const {
    return TensorView(static_cast<float*>(storage_->data()) + slot * kRows * kDim + shift,
                      DType::f32, device(), {kRows, kDim});
  }
  TensorView rstd(int slot, std::int64_t shift = 0) const {
    return TensorView(static_cast<float*>(storage_->data()) + slot * kRows * kDim + shift,
                      DType::f32, device(), {kRows});
  }
  void expect_error(const L2NormTarget& first, const L2NormTarget& second,
                    const std::string& fragment) {
    CommandEncoder encoder(device());
    expect_invalid_argument([&] { l2_norm_pair(encoder, first, second); }, "l2_norm_pair",
                            fragment);
    EXPECT_TRUE(encoder.recorded().empty());
  }

  std::optional<Buffer> storage_;
  std::vector<float> initial_;
};

TEST_P(L2NormPairValidation, EachTargetIsCheckedAsL2Norm) {
  const TensorView every_other(static_cast<float*>(storage_->data()) + 2 * kRows * kDim, DType::f32,
                               device(), {kRows, kDim / 2}, {kDim, 2});
  expect_error({view(0, 0), every_other}, {view(1), view(3)}, "first target: ");
  expect_error({view(0), view(2)}, {view(1), view(3), rstd(7), {.eps = -1.0f}},
               "second target: eps");
  const TensorView short_rows(static_cast<float*>(storage_->data()) + 3 * kRows * kDim, DType::f32,
                              device(), {kRows, kDim - 1});
  expect_error({view(0), view(2)}, {view(1), short_rows}, "second target: ");
}

TEST_P(L2NormPairValidation, OutputsShareNoMemoryWithTheOtherTarget) {
  // The second output is the first input: in place for one call, a race for the pair.
  expect_error({view(0), view(2)}, {view(1), view(0)},
               "second output is the same memory as "
               "first input");
  expect_error({view(0), view(2)}, {view(1), view(2, 4)}, "first output overlaps second output");
  expect_error({view(0), view(2)}, {view(2), view(3)},
               "first output is the same memory as "
               "second input");
  expect_error({view(0), view(2), rstd(3)}, {view(1), view(3)}, "first rstd overlaps second");
  expect_error({view(0), view(2), rstd(7)}, {view(1), view(6), rstd(7, 2)},
               "first rstd overlaps second rstd");
}

TEST_P(L2NormPairValidation, InputsMayOverlap) {
  // Both targets read one input; each writes its own output.
  Buffer sink(device(), DType::f32, 2 * kRows * kDim);
  const auto out = [&](int i) {
    return TensorView(static_cast<float*>(sink.data()) + i * kRows * kDim, DType::f32, device(),
                      {kRows, kDim});
  };
  CommandEncoder encoder(device());
  l2_norm_pair(encoder, {view(0), out(0)}, {view(0), out(1)});
  EXPECT_EQ(encoder.recorded().size(), 1u);
  encoder.wait();
}

TEST_P(L2NormPairValidation, DevicesMustMatchTheEncoder) {
  if (device().is_cpu()) GTEST_SKIP() << "needs a second device kind (the CPU encoder's own)";
  CommandEncoder encoder(Device::cpu());
  try {
    l2_norm_pair(encoder, {view(0), view(2)}, {view(1), view(3)});
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("l2_norm_pair: "), std::string::npos) << error.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, L2NormPair, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, L2NormPairValidation, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

// l2_norm_backward on the GPU where the shared cases cannot reach: rows totalling more than 2^31
// elements (64-bit offsets in the rows and split kernels); the split kernel's bits against the
// row count (a row alone spreads over many exchanging blocks, in a batch over fewer or one),
// from run to run and in place; rows longer than the chip holds (the streamed split kernel); the
// latency layout against the throughput layout; and programmatic launches in a dependent chain.
// The accuracy of the split kernel on few long rows of every dtype combination is the shared
// suite's (tests/ops/l2_norm_backward_test.cpp, FewLongRows*).
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gpu_test_support.hpp"
#include "support/backward.hpp"
#include "support/reference.hpp"

namespace l2norm {
namespace {

using testing::BackwardRun;
using testing::HostTensor;

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

// "dy/y/dx" dtype names.
std::string dtypes_of(DType dy, DType y, DType dx) {
  return std::string(dtype_name(dy)) + "/" + std::string(dtype_name(y)) + "/" +
         std::string(dtype_name(dx));
}

// bf16 patterns of values in [-1, 1] from a per-element hash, filled by several threads.
std::vector<std::uint16_t> hashed_bf16(std::size_t count, std::uint64_t salt) {
  std::vector<std::uint16_t> values(count);
  const auto fill = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      std::uint64_t h = (i + 1 + salt) * 0x9e3779b97f4a7c15ull;
      h ^= h >> 29;
      values[i] = f32_to_bf16_bits(static_cast<float>(h % 20001) / 10000.0f - 1.0f);
    }
  };
  std::vector<std::thread> fillers;
  constexpr std::size_t kParts = 8;
  for (std::size_t p = 0; p < kParts; ++p) {
    fillers.emplace_back(fill, count * p / kParts, count * (p + 1) / kParts);
  }
  for (auto& filler : fillers) filler.join();
  return values;
}

// Row `row` of dx against the float64 gradient: from the output (y, r given) or from the input
// (y and r from x, eps 1e-6 added). `value(tensor, i)` reads element i of dy, y (or x) and dx
// (0, 1, 2) widened to f32. Budget of docs/DESIGN.md "Backward", with dx's dtype `dx_dtype`.
template <typename Value>
void expect_row(const Value& value, DType dx_dtype, std::int64_t row, std::int64_t dim,
                const float* rstd, double scale, const std::string& what) {
  const auto at = [&](int tensor, std::int64_t j) {
    return static_cast<double>(value(tensor, static_cast<std::size_t>(row * dim + j)));
  };
  double r = 0.0;
  std::vector<double> y(static_cast<std::size_t>(dim));
  if (rstd != nullptr) {
    r = rstd[row];
    for (std::int64_t j = 0; j < dim; ++j) y[std::size_t(j)] = at(1, j);
  } else {
    double sum = 0.0;
    for (std::int64_t j = 0; j < dim; ++j) sum += at(1, j) * at(1, j);
    r = 1.0 / std::sqrt(sum + 1e-6);
    for (std::int64_t j = 0; j < dim; ++j) y[std::size_t(j)] = at(1, j) * r;
  }
  double dot = 0.0;
  double magnitude = 0.0;
  for (std::int64_t j = 0; j < dim; ++j) {
    dot += at(0, j) * y[std::size_t(j)];
    magnitude += std::fabs(at(0, j) * y[std::size_t(j)]);
  }
  const double c = rstd != nullptr ? 2.0 : 4.0;
  const double levels = std::ceil(std::log2(static_cast<double>(dim))) + 4.0;
  std::int64_t failures = 0;
  for (std::int64_t j = 0; j < dim; ++j) {
    const double expected = scale * r * (at(0, j) - dot * y[std::size_t(j)]);
    const double tolerance = c * levels * 0x1p-24 * std::fabs(scale) * r *
                                 (std::fabs(at(0, j)) + std::fabs(y[std::size_t(j)]) * magnitude) +
                             testing::ulp_at(expected, dx_dtype);
    const double got = at(2, j);
    if (!(std::fabs(got - expected) <= tolerance) && failures++ < 3) {
      ADD_FAILURE() << what << " row " << row << " element " << j << ": " << got << ", expected "
                    << expected << " within " << tolerance;
    }
  }
  EXPECT_EQ(failures, 0) << what << " row " << row;
}

// Rows of more than 2^31 elements in total, checked on a sample of rows, among them the rows on
// both sides of element 2^31: bf16 rows of 4096 (the rows kernel) and of 2^27 (the split kernel,
// streamed: 16384 tiles a row), in both forms.
TEST(CudaBackward, RowsOverTwoToThe31Elements) {
  L2NORM_REQUIRE_GPU();
  for (const std::int64_t dim : {std::int64_t{4096}, std::int64_t{1} << 27}) {
    const std::int64_t rows = (std::int64_t{1} << 31) / dim + 1;
    const std::int64_t count = rows * dim;
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
    L2NORM_CUDA_OK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (free_bytes < static_cast<std::size_t>(count) * 2 * 3 + (std::size_t{1} << 30)) {
      GTEST_SKIP() << "needs about " << (count * 6 >> 30) + 1 << " GiB of free GPU memory, "
                   << free_bytes << " bytes free";
    }
    const std::vector<std::uint16_t> dy_host = hashed_bf16(static_cast<std::size_t>(count), 0);
    const std::vector<std::uint16_t> y_host = hashed_bf16(static_cast<std::size_t>(count), 77);
    std::vector<float> rstd_host(static_cast<std::size_t>(rows));
    for (std::int64_t row = 0; row < rows; ++row) {
      rstd_host[std::size_t(row)] = 0.5f + 0.125f * static_cast<float>(row % 7);
    }

    const Device gpu = Device::cuda(0);
    Buffer dy(gpu, DType::bf16, count), y(gpu, DType::bf16, count), dx(gpu, DType::bf16, count);
    Buffer rstd(gpu, DType::f32, rows);
    dy.copy_from_host(dy_host.data(), dy_host.size() * 2);
    y.copy_from_host(y_host.data(), y_host.size() * 2);
    rstd.copy_from_host(rstd_host.data(), rstd_host.size() * sizeof(float));
    std::vector<std::uint16_t> dx_host(static_cast<std::size_t>(count));
    const std::int64_t last_below = ((std::int64_t{1} << 31) - 1) / dim;  // holds element 2^31 - 1
    const std::int64_t sample[] = {0, 1, rows / 2, last_below, last_below + 1, rows - 1};
    const auto value = [&](int tensor, std::size_t i) {
      const std::vector<std::uint16_t>& values = tensor == 0   ? dy_host
                                                 : tensor == 1 ? y_host
                                                               : dx_host;
      return bf16_bits_to_f32(values[i]);
    };
    const std::string kernel =
        dim == 4096 ? "l2_norm_backward_rows<" : "l2_norm_backward_split_streamed<";

    CommandEncoder encoder(gpu);
    l2_norm_backward(encoder, dy.view({rows, dim}), y.view({rows, dim}), rstd.view(),
                     dx.view({rows, dim}));
    EXPECT_TRUE(starts_with(encoder.recorded().back().variant, kernel))
        << encoder.recorded().back().variant;
    encoder.wait();
    dx.copy_to_host(dx_host.data(), dx_host.size() * 2);
    for (const std::int64_t row : sample) {
      expect_row(value, DType::bf16, row, dim, rstd_host.data(), 1.0, kernel + " from output");
    }

    l2_norm_backward_from_input(encoder, dy.view({rows, dim}), y.view({rows, dim}),
                                dx.view({rows, dim}));
    EXPECT_TRUE(starts_with(encoder.recorded().back().variant, kernel))
        << encoder.recorded().back().variant;
    encoder.wait();
    dx.copy_to_host(dx_host.data(), dx_host.size() * 2);
    for (const std::int64_t row : sample) {
      expect_row(value, DType::bf16, row, dim, nullptr, 1.0, kernel + " from input");
    }
  }
}

// Inputs of a bitwise case: dy, x (also standing in for y from the output, where any values do)
// and rstd; rows 1 and 2 take the rare path from the input (row 1 huge, or for f16 x, which
// cannot hold huge values, zero; row 2 zero).
struct BitwiseInputs {
  HostTensor dy;
  HostTensor x;
  std::vector<float> rstd;
};

BitwiseInputs bitwise_inputs(DType dy_dtype, DType x_dtype, std::int64_t rows, std::int64_t dim,
                             std::uint64_t seed) {
  BitwiseInputs inputs{testing::random_tensor(dy_dtype, std::size_t(rows * dim), seed),
                       testing::random_tensor(x_dtype, std::size_t(rows * dim), seed + 1),
                       std::vector<float>(std::size_t(rows))};
  for (std::int64_t row = 0; row < rows; ++row) {
    inputs.rstd[std::size_t(row)] = 0.5f + 0.125f * static_cast<float>(row % 7);
  }
  for (std::int64_t j = 0; j < dim; ++j) {
    const auto at = [&](std::int64_t row) { return std::size_t(row * dim + j); };
    if (rows > 1) {
      inputs.x.set(at(1), x_dtype == DType::f16 ? 0.0f : inputs.x.get(at(1)) * 1e20f);
    }
    if (rows > 2) inputs.x.set(at(2), 0.0f);
  }
  return inputs;
}

// Rows [first, first + count) of a [rows, dim] tensor.
HostTensor rows_of(const HostTensor& tensor, std::int64_t first, std::int64_t count,
                   std::int64_t dim) {
  HostTensor part(tensor.dtype(), std::size_t(count * dim));
  const std::size_t row_bytes = std::size_t(dim) * dtype_size(tensor.dtype());
  std::memcpy(part.data(), static_cast<const char*>(tensor.data()) + first * row_bytes,
              std::size_t(count) * row_bytes);
  return part;
}

// Each of `rows_to_check` of `batch` (dx of all rows) against the same row run alone, bit for bit;
// returns the variant that ran the last lone row.
std::string expect_rows_as_alone(const BitwiseInputs& inputs, const HostTensor& batch,
                                 bool from_input, DType dx_dtype, std::int64_t dim,
                                 const L2NormOptions& options,
                                 std::initializer_list<std::int64_t> rows_to_check,
                                 const std::string& what) {
  std::string alone_variant;
  for (const std::int64_t row : rows_to_check) {
    const HostTensor dy = rows_of(inputs.dy, row, 1, dim);
    const HostTensor x = rows_of(inputs.x, row, 1, dim);
    const std::vector<float> rstd{inputs.rstd[std::size_t(row)]};
    const HostTensor alone = testing::run_backward(
        Device::cuda(0), {dy, x, from_input ? nullptr : &rstd, dx_dtype, 1, dim, options},
        &alone_variant);
    EXPECT_TRUE(rows_of(batch, row, 1, dim).bitwise_equal(alone))
        << what << " row " << row << ": " << alone_variant << " alone";
  }
  return alone_variant;
}

// The split kernel sums a row in an order fixed by dim (and the device): a row alone (spread over
// many exchanging blocks) and in a batch (fewer blocks a row, in waves, or one block a row with
// no exchange at all) must give the same bits, as must a second run and the same call in place
// over dy. Rare rows (f64 sums exchanged) from the input, partial last tiles, the 4-, 2- and
// 1-element vector variants and mixed dtypes are among the cases.
TEST(CudaBackward, SplitRowsDoNotDependOnTheRowCount) {
  L2NORM_REQUIRE_GPU();
  struct Case {
    DType dy, x, dx;
    std::int64_t rows;
    std::int64_t dim;
    L2NormOptions options;
  };
  const L2NormOptions plain{};
  const L2NormOptions clamp_scaled{.eps = 1e-3f, .scale = 0.75f, .eps_mode = EpsMode::clamp};
  const Case cases[] = {
      // Two waves of co-resident blocks on an H100 or H200 (f32); one wave (bf16).
      {DType::f32, DType::f32, DType::f32, 8, std::int64_t{1} << 20, plain},
      {DType::bf16, DType::bf16, DType::bf16, 8, std::int64_t{1} << 20, clamp_scaled},
      {DType::f32, DType::f32, DType::f32, 64, 65536, clamp_scaled},
      {DType::f32, DType::bf16, DType::f16, 3, 300000, plain},
      // A row per block in the batch, no exchange; alone, three exchanging blocks.
      {DType::f32, DType::f32, DType::f32, 300, 20000, clamp_scaled},
      {DType::bf16, DType::bf16, DType::bf16, 300, 32768 + 8, plain},
      // Odd dims: 1-element vectors.
      {DType::f16, DType::f16, DType::f16, 40, 70001, plain},
      {DType::f32, DType::f32, DType::bf16, 5, 100003, clamp_scaled},
  };
  for (const Case& c : cases) {
    const BitwiseInputs inputs = bitwise_inputs(c.dy, c.x, c.rows, c.dim, 17);
    for (const bool from_input : {false, true}) {
      const std::string what = std::to_string(c.rows) + " x " + std::to_string(c.dim) + " " +
                               dtypes_of(c.dy, c.x, c.dx) +
                               (from_input ? " from input" : " from output");
      const BackwardRun run{inputs.dy, inputs.x, from_input ? nullptr : &inputs.rstd, c.dx, c.rows,
                            c.dim,     c.options};
      std::string variant;
      const HostTensor batch = testing::run_backward(Device::cuda(0), run, &variant);
      EXPECT_TRUE(starts_with(variant, "l2_norm_backward_split_")) << what << ": " << variant;
      EXPECT_TRUE(testing::run_backward(Device::cuda(0), run).bitwise_equal(batch))
          << what << ": a second run differs";
      if (c.dx == c.dy) {
        BackwardRun in_place = run;
        in_place.in_place = true;
        EXPECT_TRUE(testing::run_backward(Device::cuda(0), in_place).bitwise_equal(batch))
            << what << ": in place differs";
      }
      const std::string alone = expect_rows_as_alone(inputs, batch, from_input, c.dx, c.dim,
                                                     c.options, {0, 1, 2, c.rows - 1}, what);
      EXPECT_TRUE(starts_with(alone, "l2_norm_backward_split_")) << what << ": " << alone;
    }
  }
}

// Rows longer than the co-resident blocks hold on chip (2^24 f32 elements are 2048 tiles, 2^25
// bf16 4096: more than any current GPU's multiprocessors times 4 or 8) take the streamed split
// kernel. Against the float64 gradient, a rare row from the input (its f32 sum of squares
// underflows) included, and each row against the same row alone.
TEST(CudaBackward, RowsLongerThanTheChipAreStreamed) {
  L2NORM_REQUIRE_GPU();
  for (const auto& [dtype, dim] : {std::pair{DType::f32, std::int64_t{1} << 24},
                                   std::pair{DType::bf16, std::int64_t{1} << 25}}) {
    const std::int64_t rows = 2;
    BitwiseInputs inputs = bitwise_inputs(dtype, dtype, rows, dim, 29);
    for (std::int64_t j = 0; j < dim; ++j) {
      inputs.x.set(std::size_t(dim + j), inputs.x.get(std::size_t(j)) * 1e-30f);
    }
    for (const bool from_input : {false, true}) {
      const std::string what = std::string(dtype_name(dtype)) + " 2 x " + std::to_string(dim) +
                               (from_input ? " from input" : " from output");
      const L2NormOptions options{.scale = 0.5f};
      std::string variant;
      const HostTensor dx = testing::run_backward(
          Device::cuda(0),
          {inputs.dy, inputs.x, from_input ? nullptr : &inputs.rstd, dtype, rows, dim, options},
          &variant);
      EXPECT_TRUE(starts_with(variant, "l2_norm_backward_split_streamed<"))
          << what << ": " << variant;
      const auto value = [&](int tensor, std::size_t i) {
        return tensor == 0 ? inputs.dy.get(i) : tensor == 1 ? inputs.x.get(i) : dx.get(i);
      };
      for (std::int64_t row = 0; row < rows; ++row) {
        expect_row(value, dtype, row, dim, from_input ? nullptr : inputs.rstd.data(), 0.5, what);
      }
      expect_rows_as_alone(inputs, dx, from_input, dtype, dim, options, {0, 1}, what);
    }
  }
}

// 16-bit rows of up to 256 elements take one vector per thread on twice the threads in batches
// too small to fill the device (the latency layout) and two vectors per thread in large ones;
// both sum in one order. Each row of a large batch is compared with the same row alone, bit for
// bit, in both forms, with rare rows from the input (f32 sum overflowing, zero) and a row ending
// in a partial vector group (dim 200).
TEST(CudaBackward, LatencyLayoutMatchesTheThroughputLayoutBitForBit) {
  L2NORM_REQUIRE_GPU();
  const std::int64_t rows = 70000;
  struct Triple {
    DType dy, x, dx;
  };
  for (const Triple t :
       {Triple{DType::bf16, DType::bf16, DType::bf16}, Triple{DType::f16, DType::f16, DType::f16},
        Triple{DType::bf16, DType::f16, DType::bf16}}) {
    for (const std::int64_t dim : {std::int64_t{8}, std::int64_t{64}, std::int64_t{128},
                                   std::int64_t{200}, std::int64_t{256}}) {
      const BitwiseInputs inputs = bitwise_inputs(t.dy, t.x, rows, dim, 41);
      const L2NormOptions options{.scale = 0.25f};
      for (const bool from_input : {false, true}) {
        const std::string what = dtypes_of(t.dy, t.x, t.dx) + " dim " + std::to_string(dim) +
                                 (from_input ? " from input" : " from output");
        std::string variant;
        const HostTensor batch = testing::run_backward(
            Device::cuda(0),
            {inputs.dy, inputs.x, from_input ? nullptr : &inputs.rstd, t.dx, rows, dim, options},
            &variant);
        const std::string alone = expect_rows_as_alone(inputs, batch, from_input, t.dx, dim,
                                                       options, {0, 1, 2, rows - 1}, what);
        // The lone row runs in the latency layout (N x 1); 70000 rows of 64 or more elements fill
        // more than half of any current GPU's thread slots, so they do not.
        EXPECT_NE(alone.find("x1,"), std::string::npos) << what << ": " << alone;
        if (dim >= 64) {
          EXPECT_NE(variant.find("x2,"), std::string::npos) << what << ": " << variant;
        }
      }
    }
  }
}

// A dependent chain of dispatches, each reading what the one before wrote: the forward with rstd,
// the backward from its output, the backward from the input writing the next forward's input.
// On sm_90 and newer the rows kernels launch programmatically (they may start while the previous
// kernel runs, and wait before touching memory); the chain must give the bits of plain launches
// (set_launch_overlap(false)), which a kernel touching memory before its predecessor completed
// would break. Decode shapes (the latency layout) and an f32 one (the throughput layout).
TEST(CudaBackward, ProgrammaticLaunchesWaitForThePreviousKernel) {
  L2NORM_REQUIRE_GPU();
  struct Shape {
    DType dtype;
    std::int64_t rows;
    std::int64_t dim;
  };
  for (const Shape shape :
       {Shape{DType::bf16, 32, 128}, Shape{DType::bf16, 2048, 128}, Shape{DType::f32, 4096, 256}}) {
    const std::int64_t count = shape.rows * shape.dim;
    const HostTensor a0 = testing::random_tensor(shape.dtype, std::size_t(count), 51);
    const HostTensor d = testing::random_tensor(shape.dtype, std::size_t(count), 52);
    const HostTensor e = testing::random_tensor(shape.dtype, std::size_t(count), 53);
    const Device gpu = Device::cuda(0);
    const auto chain = [&](bool overlap) {
      Buffer a(gpu, shape.dtype, count), y(gpu, shape.dtype, count), b(gpu, shape.dtype, count);
      Buffer d_buffer(gpu, shape.dtype, count), e_buffer(gpu, shape.dtype, count);
      Buffer rstd(gpu, DType::f32, shape.rows);
      a.copy_from_host(a0.data(), a0.bytes());
      d_buffer.copy_from_host(d.data(), d.bytes());
      e_buffer.copy_from_host(e.data(), e.bytes());
      // The copies above may return before their DMA ends; the encoder's stream does not wait
      // for the legacy stream.
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      CommandEncoder encoder(gpu);
      encoder.set_launch_overlap(overlap);
      const auto view = [&](const Buffer& buffer) { return buffer.view({shape.rows, shape.dim}); };
      // Scales that change from step to step, so that no step's values repeat an earlier one's.
      for (int step = 0; step < 100; ++step) {
        l2_norm(encoder, view(a), view(y), rstd.view());
        l2_norm_backward(encoder, view(d_buffer), view(y), rstd.view(), view(b), {.scale = 0.75f});
        l2_norm_backward_from_input(encoder, view(b), view(e_buffer), view(a),
                                    {.scale = 2.0f + 0.25f * static_cast<float>(step % 5)});
      }
      encoder.wait();
      HostTensor result(shape.dtype, std::size_t(count));
      a.copy_to_host(result.data(), result.bytes());
      return result;
    };
    const HostTensor plain = chain(false);
    const HostTensor overlapped = chain(true);
    const std::string what = std::string(dtype_name(shape.dtype)) + " " +
                             std::to_string(shape.rows) + " x " + std::to_string(shape.dim);
    EXPECT_TRUE(overlapped.bitwise_equal(plain)) << what;
    EXPECT_FALSE(plain.bitwise_equal(a0)) << what << ": the chain changed nothing";
    for (std::size_t i = 0; i < plain.count(); ++i) {
      ASSERT_TRUE(std::isfinite(plain.get(i))) << what << " element " << i;
    }
  }
}

}  // namespace
}  // namespace l2norm

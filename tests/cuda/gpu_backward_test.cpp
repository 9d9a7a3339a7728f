// l2_norm_backward on the GPU where the shared cases cannot reach: rows totalling more than 2^31
// elements (64-bit offsets in the kernels), checked on a sample of rows, among them the rows on
// both sides of element 2^31.
#include <cuda_runtime_api.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gpu_test_support.hpp"
#include "support/reference.hpp"

namespace l2norm {
namespace {

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
// (y and r from x). Budget of docs/DESIGN.md "Backward".
void expect_row(const std::vector<std::uint16_t>& dy, const std::vector<std::uint16_t>& y_or_x,
                const std::vector<std::uint16_t>& dx, std::int64_t row, std::int64_t dim,
                const float* rstd, const std::string& what) {
  const auto at = [&](const std::vector<std::uint16_t>& values, std::int64_t j) {
    return static_cast<double>(bf16_bits_to_f32(values[static_cast<std::size_t>(row * dim + j)]));
  };
  double r = 0.0;
  std::vector<double> y(static_cast<std::size_t>(dim));
  if (rstd != nullptr) {
    r = rstd[row];
    for (std::int64_t j = 0; j < dim; ++j) y[std::size_t(j)] = at(y_or_x, j);
  } else {
    double sum = 0.0;
    for (std::int64_t j = 0; j < dim; ++j) sum += at(y_or_x, j) * at(y_or_x, j);
    r = 1.0 / std::sqrt(sum + 1e-6);
    for (std::int64_t j = 0; j < dim; ++j) y[std::size_t(j)] = at(y_or_x, j) * r;
  }
  double dot = 0.0;
  double magnitude = 0.0;
  for (std::int64_t j = 0; j < dim; ++j) {
    dot += at(dy, j) * y[std::size_t(j)];
    magnitude += std::fabs(at(dy, j) * y[std::size_t(j)]);
  }
  const double c = rstd != nullptr ? 2.0 : 4.0;
  const double levels = std::ceil(std::log2(static_cast<double>(dim))) + 4.0;
  std::int64_t failures = 0;
  for (std::int64_t j = 0; j < dim; ++j) {
    const double expected = r * (at(dy, j) - dot * y[std::size_t(j)]);
    const double tolerance = c * levels * 0x1p-24 * r *
                                 (std::fabs(at(dy, j)) + std::fabs(y[std::size_t(j)]) * magnitude) +
                             testing::ulp_at(expected, DType::bf16);
    const double got = at(dx, j);
    if (!(std::fabs(got - expected) <= tolerance) && failures++ < 3) {
      ADD_FAILURE() << what << " row " << row << " element " << j << ": " << got << ", expected "
                    << expected << " within " << tolerance;
    }
  }
  EXPECT_EQ(failures, 0) << what << " row " << row;
}

TEST(CudaBackward, RowsOverTwoToThe31Elements) {
  L2NORM_REQUIRE_GPU();
  const std::int64_t dim = 4096;
  const std::int64_t rows = (std::int64_t{1} << 31) / dim + 1;  // 2^31 + 4096 elements
  const std::int64_t count = rows * dim;
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  L2NORM_CUDA_OK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < static_cast<std::size_t>(count) * 2 * 3 + (std::size_t{1} << 30)) {
    GTEST_SKIP() << "needs about 13 GiB of free GPU memory, " << free_bytes << " bytes free";
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
  const std::int64_t last_below = ((std::int64_t{1} << 31) - 1) / dim;  // ends at element 2^31 - 1
  const std::int64_t sample[] = {0, 1, rows / 2, last_below, last_below + 1, rows - 1};

  CommandEncoder encoder(gpu);
  l2_norm_backward(encoder, dy.view({rows, dim}), y.view({rows, dim}), rstd.view(),
                   dx.view({rows, dim}));
  encoder.wait();
  dx.copy_to_host(dx_host.data(), dx_host.size() * 2);
  for (const std::int64_t row : sample) {
    expect_row(dy_host, y_host, dx_host, row, dim, rstd_host.data(), "from output");
  }

  l2_norm_backward_from_input(encoder, dy.view({rows, dim}), y.view({rows, dim}),
                              dx.view({rows, dim}));
  encoder.wait();
  dx.copy_to_host(dx_host.data(), dx_host.size() * 2);
  for (const std::int64_t row : sample) {
    expect_row(dy_host, y_host, dx_host, row, dim, nullptr, "from input");
  }
}

// A long row (split kernel) in several rows, and the same rows one by one: the same bits, and
// the same bits run after run.
TEST(CudaBackward, SplitRowsAreBatchIndependentAndDeterministic) {
  L2NORM_REQUIRE_GPU();
  const std::int64_t rows = 5, dim = 70000;
  const testing::HostTensor dy = testing::random_tensor(DType::f32, std::size_t(rows * dim), 1);
  const testing::HostTensor x = testing::random_tensor(DType::bf16, std::size_t(rows * dim), 2);
  const Device gpu = Device::cuda(0);
  Buffer dy_buffer(gpu, DType::f32, rows * dim), x_buffer(gpu, DType::bf16, rows * dim);
  Buffer dx_buffer(gpu, DType::bf16, rows * dim);
  dy_buffer.copy_from_host(dy.data(), dy.bytes());
  x_buffer.copy_from_host(x.data(), x.bytes());
  // Runs rows [first, first + count) into the same rows of dx.
  const auto run = [&](std::int64_t first, std::int64_t count) {
    CommandEncoder encoder(gpu);
    const std::array<std::int64_t, 2> shape{count, dim};
    const auto at = [&](const Buffer& buffer) {
      return static_cast<char*>(buffer.data()) +
             first * dim * static_cast<std::int64_t>(dtype_size(buffer.dtype()));
    };
    l2_norm_backward_from_input(encoder, TensorView(at(dy_buffer), DType::f32, gpu, shape),
                                TensorView(at(x_buffer), DType::bf16, gpu, shape),
                                TensorView(at(dx_buffer), DType::bf16, gpu, shape));
    EXPECT_EQ(encoder.recorded()[0].variant.rfind("l2_norm_backward_split_on_chip<", 0), 0u)
        << encoder.recorded()[0].variant;
    encoder.wait();
  };
  const auto dx_now = [&] {
    testing::HostTensor dx(DType::bf16, std::size_t(rows * dim));
    dx_buffer.copy_to_host(dx.data(), dx.bytes());
    return dx;
  };
  run(0, rows);
  const testing::HostTensor all = dx_now();
  run(0, rows);
  EXPECT_TRUE(dx_now().bitwise_equal(all));
  testing::HostTensor poison(DType::bf16, std::size_t(rows * dim));
  poison.fill_poison();
  dx_buffer.copy_from_host(poison.data(), poison.bytes());
  for (std::int64_t row = 0; row < rows; ++row) run(row, 1);
  EXPECT_TRUE(dx_now().bitwise_equal(all)) << "rows one by one differ from the batch";
}

}  // namespace
}  // namespace l2norm

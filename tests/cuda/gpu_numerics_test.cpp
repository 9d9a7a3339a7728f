// CUDA results against the float64 reference where the GPU kernels differ from the shared cases:
// more than 2^31 elements, misaligned pointers, split long rows on chip and streamed (with
// rare-path rows), and bitwise determinism from run to run.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gpu_test_support.hpp"
#include "support/reference.hpp"

namespace l2norm {
namespace {

using testing::HostTensor;

// Each of `rows_to_check` of `batch` (the output for all rows of `input`) against the same row
// normalized alone, bit for bit; returns the kernel that ran the last lone row.
std::string expect_rows_as_alone(const HostTensor& input, const HostTensor& batch, std::int64_t dim,
                                 std::initializer_list<std::int64_t> rows_to_check,
                                 const L2NormOptions& options, const std::string& what) {
  const std::size_t row_bytes = static_cast<std::size_t>(dim) * dtype_size(input.dtype());
  std::string alone_variant;
  for (const std::int64_t row : rows_to_check) {
    HostTensor alone_input(input.dtype(), static_cast<std::size_t>(dim));
    std::memcpy(alone_input.data(), static_cast<const char*>(input.data()) + row * row_bytes,
                row_bytes);
    const HostTensor alone =
        testing::run_l2_norm(Device::cuda(0), alone_input, 1, dim, options, &alone_variant);
    HostTensor batched(input.dtype(), static_cast<std::size_t>(dim));
    std::memcpy(batched.data(), static_cast<const char*>(batch.data()) + row * row_bytes,
                row_bytes);
    EXPECT_TRUE(batched.bitwise_equal(alone))
        << what << " row " << row << ": " << alone_variant << " alone";
  }
  return alone_variant;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

TEST(CudaNumerics, TensorOverTwoToThe31Elements) {
  L2NORM_REQUIRE_GPU();
  const std::int64_t dim = 4096;
  const std::int64_t rows = (std::int64_t{1} << 31) / dim + 1;  // 2^31 + 4096 elements
  const std::int64_t count = rows * dim;
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  L2NORM_CUDA_OK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < static_cast<std::size_t>(count) * 2 * 2 + (std::size_t{1} << 30)) {
    GTEST_SKIP() << "needs about 9 GiB of free GPU memory, " << free_bytes << " bytes free";
  }
  // bf16 patterns from a per-element hash, filled by several threads (4 GiB).
  std::vector<std::uint16_t> host(static_cast<std::size_t>(count));
  const auto fill = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      std::uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull;
      h ^= h >> 29;
      const float value = static_cast<float>(h % 20001) / 10000.0f - 1.0f;
      host[i] = f32_to_bf16_bits(value);
    }
  };
  std::vector<std::thread> fillers;
  const std::size_t parts = 8;
  for (std::size_t p = 0; p < parts; ++p) {
    fillers.emplace_back(fill, host.size() * p / parts, host.size() * (p + 1) / parts);
  }
  for (auto& filler : fillers) filler.join();

  Buffer in(Device::cuda(0), DType::bf16, count);
  Buffer out(Device::cuda(0), DType::bf16, count);
  in.copy_from_host(host.data(), host.size() * 2);
  CommandEncoder encoder(Device::cuda(0));
  l2_norm(encoder, in, out, rows, dim);
  encoder.wait();

  // Rows at the start, around element 2^31, and at the end.
  for (const std::int64_t row :
       {std::int64_t{0}, std::int64_t{1}, rows / 2, rows - 3, rows - 2, rows - 1}) {
    HostTensor x(DType::bf16, static_cast<std::size_t>(dim));
    std::memcpy(x.data(), host.data() + row * dim, static_cast<std::size_t>(dim) * 2);
    HostTensor got(DType::bf16, static_cast<std::size_t>(dim));
    L2NORM_CUDA_OK(cudaMemcpy(got.data(), static_cast<const std::uint16_t*>(out.data()) + row * dim,
                              static_cast<std::size_t>(dim) * 2, cudaMemcpyDeviceToHost));
    testing::expect_within_budget(got, testing::reference_l2_norm(x, 1, dim, {}), dim, false,
                                  ("row " + std::to_string(row)).c_str());
  }
}

TEST(CudaNumerics, MisalignedPointersOneToSevenElements) {
  L2NORM_REQUIRE_GPU();
  const L2NormOptions options{1e-6f, 0.5f, EpsMode::add};
  for (const DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    for (const std::int64_t dim :
         {std::int64_t{128}, std::int64_t{100}, std::int64_t{1000}, std::int64_t{40000}}) {
      const std::int64_t rows = dim > 10000 ? 3 : 37;
      const HostTensor input =
          testing::random_tensor(dtype, static_cast<std::size_t>(rows * dim), 3);
      const auto expected = testing::reference_l2_norm(input, rows, dim, options);
      Buffer in(Device::cuda(0), dtype, rows * dim + 8);
      Buffer out(Device::cuda(0), dtype, rows * dim + 8);
      for (std::int64_t offset = 1; offset <= 7; ++offset) {
        const std::size_t bytes_offset = static_cast<std::size_t>(offset) * dtype_size(dtype);
        char* in_data = static_cast<char*>(in.data()) + bytes_offset;
        // Output shifted differently from the input: the common alignment decides the variant.
        const std::size_t out_offset =
            static_cast<std::size_t>((offset * 3) % 8) * dtype_size(dtype);
        char* out_data = static_cast<char*>(out.data()) + out_offset;
        L2NORM_CUDA_OK(cudaMemcpy(in_data, input.data(), input.bytes(), cudaMemcpyHostToDevice));
        // The encoder's stream does not wait for the legacy stream's copy.
        L2NORM_CUDA_OK(cudaStreamSynchronize(cudaStreamLegacy));
        CommandEncoder encoder(Device::cuda(0));
        l2_norm(encoder, TensorView(in_data, dtype, Device::cuda(0), {rows, dim}),
                TensorView(out_data, dtype, Device::cuda(0), {rows, dim}), options);
        encoder.wait();
        HostTensor got(dtype, input.count());
        L2NORM_CUDA_OK(cudaMemcpy(got.data(), out_data, got.bytes(), cudaMemcpyDeviceToHost));
        const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim) +
                                 " offset " + std::to_string(offset);
        testing::expect_within_budget(got, expected, dim, true, what.c_str());
      }
    }
  }
}

TEST(CudaNumerics, LongRowsAgainstFloat64Reference) {
  L2NORM_REQUIRE_GPU();
  for (const std::int64_t dim : {std::int64_t{1} << 20, std::int64_t{1} << 22}) {
    for (const DType dtype : {DType::f32, DType::bf16}) {
      const std::int64_t rows = 4;
      HostTensor input = testing::random_tensor(dtype, static_cast<std::size_t>(rows * dim), 17);
      // Row 1 overflows the f32 sum of squares, row 2 underflows it, row 3 is zero: rare path.
      for (std::int64_t i = 0; i < dim; ++i) {
        const auto at = [&](std::int64_t row) { return static_cast<std::size_t>(row * dim + i); };
        input.set(at(1), input.get(at(1)) * 1e20f);
        input.set(at(2), input.get(at(2)) * 1e-30f);
        input.set(at(3), 0.0f);
      }
      const L2NormOptions options{1e-6f, 1.0f, EpsMode::add};
      const HostTensor got = testing::run_l2_norm(Device::cuda(0), input, rows, dim, options);
      const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim);
      testing::expect_within_budget(got, testing::reference_l2_norm(input, rows, dim, options), dim,
                                    false, what.c_str());
    }
  }
}

// Long rows whose segments stay on chip (registers plus shared memory): how many tiles each block
// stages depends on the row count (one wave when it fits, several when not), but a row's result
// must not. Each row of a batch is compared bit for bit with the same row normalized alone, and
// the batch against the float64 reference; one row takes the rare (f64) path through the staged
// tiles, one dim ends in a partial tile, 20 and 50 rows of 2^19 f32 take two and four waves on an
// H100, and odd dims take the 2-, 4- and 8-byte vector variants. In place, every bit is the same
// (the rare path reads the tile a block keeps in registers from memory again).
TEST(CudaNumerics, OnChipSplitRowsDoNotDependOnTheRowCount) {
  L2NORM_REQUIRE_GPU();
  struct Case {
    DType dtype;
    std::int64_t dim;
    std::int64_t rows;
  };
  const std::int64_t dim_with_partial_tile = 3 * 16384 + 100;
  for (const Case c :
       {Case{DType::f32, std::int64_t{1} << 19, 6}, Case{DType::f32, std::int64_t{1} << 19, 20},
        Case{DType::f32, std::int64_t{1} << 19, 50}, Case{DType::bf16, std::int64_t{1} << 19, 30},
        Case{DType::f32, dim_with_partial_tile, 40},
        Case{DType::bf16, (std::int64_t{1} << 19) + 1, 8},
        Case{DType::f32, (std::int64_t{1} << 19) + 1, 8},
        Case{DType::f32, (std::int64_t{1} << 19) + 2, 8}}) {
    HostTensor input =
        testing::random_tensor(c.dtype, static_cast<std::size_t>(c.rows * c.dim), 31);
    const std::int64_t rare_row = c.rows / 2;
    for (std::int64_t i = 0; i < c.dim; ++i) {
      const auto at = static_cast<std::size_t>(rare_row * c.dim + i);
      input.set(at, input.get(at) * 1e20f);
    }
    const L2NormOptions options{1e-6f, 1.0f, EpsMode::add};
    const HostTensor got = testing::run_l2_norm(Device::cuda(0), input, c.rows, c.dim, options);
    const std::string what = std::string(dtype_name(c.dtype)) + " " + std::to_string(c.rows) + "x" +
                             std::to_string(c.dim);
    testing::expect_within_budget(got, testing::reference_l2_norm(input, c.rows, c.dim, options),
                                  c.dim, false, what.c_str());
    expect_rows_as_alone(input, got, c.dim, {0, rare_row, c.rows - 1}, options, what);
    EXPECT_TRUE(testing::run_l2_norm_in_place(Device::cuda(0), input, c.rows, c.dim, options)
                    .bitwise_equal(got))
        << what << " in place";
  }
}

// The on-chip split kernel writes part of each segment's output early, with the input's bits, and
// overwrites it with the result later (l2_norm_split.cuh, write_early_lines; only where input and
// output together exceed L2, as here on an H100's 50 MiB). Into a strided output whose rows are
// apart: each row must be the contiguous output's, bit for bit, and every byte between the rows
// must keep its value. 14 tiles per row: 40 f32 rows run in two waves of four blocks per row, the
// last block of a row holding tiles 12 and 13, so the early writes reach the row's last tile (100
// elements, mostly outside the row); 80 bf16 rows take two blocks of seven tiles.
TEST(CudaNumerics, OnChipSplitWritesNothingOutsideTheOutputRows) {
  L2NORM_REQUIRE_GPU();
  for (const auto& [dtype, rows] :
       {std::pair{DType::f32, std::int64_t{40}}, std::pair{DType::bf16, std::int64_t{80}}}) {
    const std::int64_t dim = 13 * 16384 + 100;
    const std::int64_t pitch = dim + 64;
    const std::string what = std::string(dtype_name(dtype)) + " " + std::to_string(rows) + "x" +
                             std::to_string(dim) + ", output pitch " + std::to_string(pitch);
    const HostTensor input =
        testing::random_tensor(dtype, static_cast<std::size_t>(rows * dim), 71);
    const L2NormOptions options{1e-6f, 1.0f, EpsMode::add};
    const HostTensor contiguous = testing::run_l2_norm(Device::cuda(0), input, rows, dim, options);

    const std::size_t element = dtype_size(dtype);
    const std::size_t row_bytes = static_cast<std::size_t>(dim) * element;
    const std::size_t pitch_bytes = static_cast<std::size_t>(pitch) * element;
    const std::size_t out_bytes = static_cast<std::size_t>(rows) * pitch_bytes;
    constexpr unsigned char kUntouched = 0xA5;
    Buffer in(Device::cuda(0), dtype, rows * dim);
    Buffer out(Device::cuda(0), dtype, rows * pitch);
    L2NORM_CUDA_OK(cudaMemcpy(in.data(), input.data(), input.bytes(), cudaMemcpyHostToDevice));
    L2NORM_CUDA_OK(cudaMemset(out.data(), kUntouched, out_bytes));
    // A copy from pageable memory may return before its DMA ends; the encoder's stream does not
    // wait for the legacy stream.
    L2NORM_CUDA_OK(cudaDeviceSynchronize());
    CommandEncoder encoder(Device::cuda(0));
    l2_norm(encoder, TensorView(in.data(), dtype, Device::cuda(0), {rows, dim}),
            TensorView(out.data(), dtype, Device::cuda(0), {rows, dim}, {pitch, 1}), options);
    ASSERT_EQ(encoder.recorded().size(), 1u);
    EXPECT_TRUE(starts_with(encoder.recorded()[0].variant, "l2_norm_split_on_chip<"))
        << what << ": " << encoder.recorded()[0].variant;
    encoder.wait();
    std::vector<unsigned char> got(out_bytes);
    L2NORM_CUDA_OK(cudaMemcpy(got.data(), out.data(), out_bytes, cudaMemcpyDeviceToHost));
    HostTensor rows_got(dtype, static_cast<std::size_t>(rows * dim));
    for (std::int64_t row = 0; row < rows; ++row) {
      const unsigned char* written = got.data() + static_cast<std::size_t>(row) * pitch_bytes;
      std::memcpy(static_cast<unsigned char*>(rows_got.data()) + row * row_bytes, written,
                  row_bytes);
      for (std::size_t byte = row_bytes; byte < pitch_bytes; ++byte) {
        if (written[byte] != kUntouched) {
          ADD_FAILURE() << what << ": byte " << byte - row_bytes << " after row " << row
                        << " was written";
          break;
        }
      }
    }
    EXPECT_TRUE(rows_got.bitwise_equal(contiguous)) << what;
    testing::expect_within_budget(rows_got, testing::reference_l2_norm(input, rows, dim, options),
                                  dim, false, what.c_str());
  }
}

// Rows longer than the blocks that can be co-resident keep on chip take the streamed split kernel
// (each block's tiles read a second time, mostly from L2). 2^24 f32 and 2^25 bf16 elements are over
// the on-chip limit of an H100 (132 blocks x 4 f32 or 8 16-bit tiles of 16384 elements); the test
// checks that the streamed kernel ran, then the results against the float64 reference, a rare-path
// row, and each row against the same row normalized alone (its sum order is fixed by dim).
TEST(CudaNumerics, RowsLongerThanTheChipAreStreamed) {
  L2NORM_REQUIRE_GPU();
  for (const auto& [dtype, dim] : {std::pair{DType::f32, std::int64_t{1} << 24},
                                   std::pair{DType::bf16, std::int64_t{1} << 25}}) {
    const std::int64_t rows = 2;
    const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim);
    HostTensor input = testing::random_tensor(dtype, static_cast<std::size_t>(rows * dim), 53);
    const std::int64_t rare_row = 1;
    for (std::int64_t i = 0; i < dim; ++i) {
      const auto at = static_cast<std::size_t>(rare_row * dim + i);
      input.set(at, input.get(at) * 1e-30f);
    }
    const L2NormOptions options{1e-6f, 1.0f, EpsMode::add};
    std::string variant;
    const HostTensor got =
        testing::run_l2_norm(Device::cuda(0), input, rows, dim, options, &variant);
    EXPECT_TRUE(starts_with(variant, "l2_norm_split_streamed<")) << what << ": " << variant;
    testing::expect_within_budget(got, testing::reference_l2_norm(input, rows, dim, options), dim,
                                  false, what.c_str());
    expect_rows_as_alone(input, got, dim, {0, 1}, options, what);
  }
}

// Rows that one block's shared memory holds run staged (one block per row) in batches of at least
// one row per multiprocessor, and split over several blocks in smaller ones. Both must sum in one
// order: each batch row is compared bit for bit with the same row alone (the split kernel), and
// the batch with the float64 reference. Cases: whole and partial tiles, 3 f32 and 7 16-bit tiles
// (an H100's most), the 8-, 4- and 2-byte vector variants, rare rows (f32 sum overflowing,
// underflowing, zero), the clamp eps mode and the scaled variant, and a strided view.
TEST(CudaNumerics, StagedRowsMatchTheSplitKernelBitForBit) {
  L2NORM_REQUIRE_GPU();
  struct Case {
    DType dtype;
    std::int64_t dim;
    L2NormOptions options;
  };
  cudaDeviceProp device{};
  L2NORM_CUDA_OK(cudaGetDeviceProperties(&device, 0));
  // A row for every multiprocessor and a few more.
  const std::int64_t rows = device.multiProcessorCount + 4;
  const std::int64_t tile = 16384;
  const L2NormOptions plain{1e-6f, 1.0f, EpsMode::add};
  const L2NormOptions clamp_scaled{1e-12f, 0.75f, EpsMode::clamp};
  int staged_batches = 0;
  for (const Case c : {Case{DType::bf16, 2 * tile, plain}, Case{DType::f32, 20000, clamp_scaled},
                       Case{DType::f32, 3 * tile, plain}, Case{DType::f16, 7 * tile, clamp_scaled},
                       Case{DType::f32, tile + 2, plain}, Case{DType::bf16, tile + 2, plain},
                       Case{DType::f16, 3 * tile + 1, clamp_scaled}}) {
    const std::string what =
        std::string(dtype_name(c.dtype)) + " " + std::to_string(rows) + "x" + std::to_string(c.dim);
    HostTensor input = testing::random_tensor(c.dtype, static_cast<std::size_t>(rows * c.dim), 61);
    for (std::int64_t i = 0; i < c.dim; ++i) {
      const auto at = [&](std::int64_t row) { return static_cast<std::size_t>(row * c.dim + i); };
      input.set(at(1), input.get(at(1)) * 1e20f);
      input.set(at(2), input.get(at(2)) * 1e-30f);
      input.set(at(3), 0.0f);
    }
    std::string variant;
    const HostTensor batch =
        testing::run_l2_norm(Device::cuda(0), input, rows, c.dim, c.options, &variant);
    if (starts_with(variant, "l2_norm_staged<")) ++staged_batches;
    testing::expect_within_budget(batch, testing::reference_l2_norm(input, rows, c.dim, c.options),
                                  c.dim, c.options.scale != 1.0f, what.c_str());
    const std::string alone =
        expect_rows_as_alone(input, batch, c.dim, {0, 1, 2, 3, rows - 1}, c.options, what);
    EXPECT_TRUE(starts_with(alone, "l2_norm_split_on_chip<")) << what << ": " << alone;
  }
  // Every case fits an H100's 227 KiB per block; smaller GPUs stage fewer of them.
  if (device.sharedMemPerBlockOptin >= 232448) {
    EXPECT_EQ(staged_batches, 7);
  }
  EXPECT_GE(staged_batches, 1);

  // A strided view: every other row of a wider buffer, written into every third row of another.
  const std::int64_t dim = 2 * tile + 8;
  HostTensor input = testing::random_tensor(DType::bf16, static_cast<std::size_t>(rows * dim), 67);
  const auto expected = testing::reference_l2_norm(input, rows, dim, plain);
  const std::int64_t in_pitch = 2 * dim;
  const std::int64_t out_pitch = 3 * dim;
  Buffer in(Device::cuda(0), DType::bf16, rows * in_pitch);
  Buffer out(Device::cuda(0), DType::bf16, rows * out_pitch);
  const std::size_t row_bytes = static_cast<std::size_t>(dim) * 2;
  L2NORM_CUDA_OK(cudaMemcpy2D(in.data(), static_cast<std::size_t>(in_pitch) * 2, input.data(),
                              row_bytes, row_bytes, static_cast<std::size_t>(rows),
                              cudaMemcpyHostToDevice));
  // A copy from pageable memory may return before its DMA ends; the encoder's stream does not
  // wait for the legacy stream.
  L2NORM_CUDA_OK(cudaDeviceSynchronize());
  CommandEncoder encoder(Device::cuda(0));
  l2_norm(encoder, TensorView(in.data(), DType::bf16, Device::cuda(0), {rows, dim}, {in_pitch, 1}),
          TensorView(out.data(), DType::bf16, Device::cuda(0), {rows, dim}, {out_pitch, 1}), plain);
  ASSERT_EQ(encoder.recorded().size(), 1u);
  EXPECT_TRUE(starts_with(encoder.recorded()[0].variant, "l2_norm_staged<"))
      << encoder.recorded()[0].variant;
  encoder.wait();
  HostTensor got(DType::bf16, static_cast<std::size_t>(rows * dim));
  L2NORM_CUDA_OK(cudaMemcpy2D(got.data(), row_bytes, out.data(),
                              static_cast<std::size_t>(out_pitch) * 2, row_bytes,
                              static_cast<std::size_t>(rows), cudaMemcpyDeviceToHost));
  testing::expect_within_budget(got, expected, dim, false, "strided bf16 view");
}

// Short rows take another thread layout in small batches than in large ones (latency against
// throughput); the sum order, hence every bit, must not change. Each row of a large batch is
// compared with the same row normalized alone, including a rare-path row and a row ending in a
// partial vector group (dim 200).
TEST(CudaNumerics, ShortRowsDoNotDependOnTheRowCount) {
  L2NORM_REQUIRE_GPU();
  const std::int64_t rows = 40000;
  for (const DType dtype : {DType::bf16, DType::f16}) {
    for (const std::int64_t dim :
         {std::int64_t{64}, std::int64_t{128}, std::int64_t{200}, std::int64_t{256}}) {
      HostTensor input = testing::random_tensor(dtype, static_cast<std::size_t>(rows * dim), 41);
      const std::int64_t rare_row = rows / 2;
      for (std::int64_t i = 0; i < dim; ++i) {
        const auto at = static_cast<std::size_t>(rare_row * dim + i);
        input.set(at, input.get(at) * 1e-30f);
      }
      const L2NormOptions options{1e-6f, 0.25f, EpsMode::add};
      const HostTensor batch = testing::run_l2_norm(Device::cuda(0), input, rows, dim, options);
      const std::size_t row_bytes = static_cast<std::size_t>(dim) * dtype_size(dtype);
      for (const std::int64_t row : {std::int64_t{0}, rare_row, rows - 1}) {
        HostTensor alone_input(dtype, static_cast<std::size_t>(dim));
        std::memcpy(alone_input.data(), static_cast<const char*>(input.data()) + row * row_bytes,
                    row_bytes);
        const HostTensor alone =
            testing::run_l2_norm(Device::cuda(0), alone_input, 1, dim, options);
        HostTensor batched(dtype, static_cast<std::size_t>(dim));
        std::memcpy(batched.data(), static_cast<const char*>(batch.data()) + row * row_bytes,
                    row_bytes);
        EXPECT_TRUE(batched.bitwise_equal(alone))
            << dtype_name(dtype) << " dim " << dim << " row " << row;
      }
    }
  }
}

TEST(CudaNumerics, BitwiseDeterministicRunToRun) {
  L2NORM_REQUIRE_GPU();
  struct Case {
    DType dtype;
    std::int64_t rows;
    std::int64_t dim;
  };
  for (const Case c :
       {Case{DType::bf16, 4096, 128}, Case{DType::f32, 1000, 4096}, Case{DType::f32, 40, 65536},
        Case{DType::f32, 9, 1 << 20}, Case{DType::bf16, 300, 32768}}) {
    const HostTensor input =
        testing::random_tensor(c.dtype, static_cast<std::size_t>(c.rows * c.dim), 23);
    const L2NormOptions options{1e-6f, 0.75f, EpsMode::clamp};
    const HostTensor first = testing::run_l2_norm(Device::cuda(0), input, c.rows, c.dim, options);
    for (int run = 0; run < 3; ++run) {
      EXPECT_TRUE(
          testing::run_l2_norm(Device::cuda(0), input, c.rows, c.dim, options).bitwise_equal(first))
          << dtype_name(c.dtype) << " " << c.rows << "x" << c.dim << " run " << run;
    }
  }
}

}  // namespace
}  // namespace l2norm

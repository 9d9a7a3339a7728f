// Compiles, through NVRTC and KernelRegistry::compile_for_arch, every l2_norm kernel variant the
// dispatcher can pick, for sm_80 and sm_90. Needs no GPU: this is the CI check that every kernel
// the library may JIT at run time does compile.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cuda/l2_norm_variants.hpp"
#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

using detail::cuda::L2NormVariant;

std::vector<L2NormVariant> distinct(std::vector<L2NormVariant> variants) {
  std::set<std::uint64_t> seen;
  std::vector<L2NormVariant> unique;
  for (const auto& variant : variants) {
    if (seen.insert(variant.packed()).second) unique.push_back(variant);
  }
  return unique;
}

TEST(CudaKernelVariants, PrewarmSetsCoverEveryVectorWidthTheDimAllows) {
  // bf16 128 with 16-byte vectors has a second (small-batch) layout.
  const auto bf16_128 = detail::cuda::l2_norm_variants_for(DType::bf16, 128, EpsMode::add, false);
  EXPECT_EQ(bf16_128.size(), 5u);  // 16 (two layouts), 8, 4, 2 bytes
  const auto f32_100 = detail::cuda::l2_norm_variants_for(DType::f32, 100, EpsMode::add, true);
  EXPECT_EQ(f32_100.size(), 3u);  // 16, 8, 4 bytes
  const auto odd = detail::cuda::l2_norm_variants_for(DType::f16, 101, EpsMode::clamp, false);
  ASSERT_EQ(odd.size(), 1u);
  EXPECT_EQ(odd[0].vector_bytes, 2);
}

// An H100's multiprocessors and shared memory per block.
constexpr detail::cuda::DeviceLimits kH100{132, 232448};

TEST(CudaKernelVariants, ShortRowsKernelDependsOnDimOnly) {
  for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{1} << 24}) {
    const auto short_rows = detail::cuda::choose_l2_norm_variant(DType::bf16, 128, 16, EpsMode::add,
                                                                 false, rows, kH100);
    EXPECT_EQ(short_rows.kind, detail::cuda::KernelKind::rows);
    EXPECT_EQ(short_rows.threads_per_row * short_rows.items * short_rows.vector_elements(), 128);
    const auto longest_rows = detail::cuda::choose_l2_norm_variant(
        DType::f32, detail::cuda::kMaxRowsKernelDim, 16, EpsMode::add, false, rows, kH100);
    EXPECT_EQ(longest_rows.kind, detail::cuda::KernelKind::rows);
    const auto longer = detail::cuda::choose_l2_norm_variant(
        DType::f32, detail::cuda::kMaxRowsKernelDim + 4, 16, EpsMode::add, false, rows, kH100);
    EXPECT_NE(longer.kind, detail::cuda::KernelKind::rows);
  }
}

// Longer rows go staged (one block per row) once the batch has a row per multiprocessor and one
// block's shared memory holds the row, else to the split kernel; both sum in one order (the GPU
// side: CudaNumerics.StagedRowsMatchTheSplitKernelBitForBit).
TEST(CudaKernelVariants, StagedWhereABlockHoldsTheRowAndEverySmGetsOne) {
  using detail::cuda::KernelKind;
  const auto kind = [](DType dtype, std::int64_t dim, std::int64_t rows,
                       const detail::cuda::DeviceLimits& limits) {
    // 16-byte vectors where the row's bytes allow, else one element per vector.
    const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
    const int width = (dim * element_bytes) % 16 == 0 ? 16 : static_cast<int>(element_bytes);
    return detail::cuda::choose_l2_norm_variant(dtype, dim, width, EpsMode::add, false, rows,
                                                limits)
        .kind;
  };
  const std::int64_t tile = 16384;
  // 3 f32 or 7 16-bit tiles fit 227 KiB beside the kernel's static shared memory.
  EXPECT_EQ(kind(DType::f32, tile + 4, 132, kH100), KernelKind::staged);
  EXPECT_EQ(kind(DType::f32, 3 * tile, 1000, kH100), KernelKind::staged);
  EXPECT_EQ(kind(DType::f32, 3 * tile + 4, 1000, kH100), KernelKind::split_on_chip);
  EXPECT_EQ(kind(DType::bf16, 7 * tile, 1000, kH100), KernelKind::staged);
  EXPECT_EQ(kind(DType::f16, 7 * tile + 1, 1000, kH100), KernelKind::split_on_chip);
  EXPECT_EQ(kind(DType::bf16, 7 * tile + 8, 1000, kH100), KernelKind::split_on_chip);
  // Fewer rows than multiprocessors: split, so each row spreads over more of them.
  EXPECT_EQ(kind(DType::f32, 2 * tile, 131, kH100), KernelKind::split_on_chip);
  // A device with 99 KiB per block holds two 16-bit tiles, not two f32 ones.
  const detail::cuda::DeviceLimits small{84, 101376};
  EXPECT_EQ(kind(DType::bf16, 2 * tile, 84, small), KernelKind::staged);
  EXPECT_EQ(kind(DType::f32, 2 * tile, 84, small), KernelKind::split_on_chip);
  EXPECT_EQ(kind(DType::f32, tile + 4, 84, small), KernelKind::split_on_chip);
  EXPECT_EQ(kind(DType::f32, tile, 84, small), KernelKind::rows);
}

// A long dim may run the staged or either split kernel (the batch and the device decide which), so
// all three are in its prewarm set, and each compiles its own mode only.
TEST(CudaKernelVariants, LongDimsListTheStagedAndBothSplitKernels) {
  const auto variants = detail::cuda::l2_norm_variants_for(
      DType::f32, detail::cuda::kMaxRowsKernelDim * 2, EpsMode::add, false);
  int staged = 0;
  int on_chip = 0;
  int streamed = 0;
  for (const auto& variant : variants) {
    const auto& defines = variant.spec().defines;
    const auto defined = [&defines](const std::string& define) {
      return std::find(defines.begin(), defines.end(), define) != defines.end();
    };
    if (variant.kind == detail::cuda::KernelKind::staged) {
      ++staged;
      EXPECT_EQ(variant.spec().entry, "l2_norm_staged") << variant.name();
    } else if (variant.kind == detail::cuda::KernelKind::split_on_chip) {
      ++on_chip;
      EXPECT_TRUE(defined("L2NORM_SPLIT_ON_CHIP=1")) << variant.name();
    } else if (variant.kind == detail::cuda::KernelKind::split_streamed) {
      ++streamed;
      EXPECT_TRUE(defined("L2NORM_SPLIT_ON_CHIP=0")) << variant.name();
    }
  }
  EXPECT_EQ(staged, 3);  // 16-, 8- and 4-byte vectors
  EXPECT_EQ(on_chip, 3);
  EXPECT_EQ(streamed, 3);
}

// On-chip split rows of at most kWarpRowSumTiles tiles are summed by every warp on its own; longer
// rows, and the staged and streamed kernels, keep the block reduction. The choice follows dim
// alone (the bits are the same either way: CudaNumerics.StagedRowsMatchTheSplitKernelBitForBit).
TEST(CudaKernelVariants, WarpsSumOnChipRowsOfAtMost64Tiles) {
  const std::int64_t tile = 16384;
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{8}, std::int64_t{1} << 20}) {
      const auto at_most = detail::cuda::choose_l2_norm_variant(
          dtype, detail::cuda::kWarpRowSumTiles * tile, 16, EpsMode::add, false, rows, kH100);
      const auto longer = detail::cuda::choose_l2_norm_variant(
          dtype, detail::cuda::kWarpRowSumTiles * tile + 8, 16, EpsMode::add, false, rows, kH100);
      EXPECT_EQ(at_most.kind, detail::cuda::KernelKind::split_on_chip);
      EXPECT_TRUE(at_most.row_sum_in_warps) << at_most.name();
      EXPECT_FALSE(longer.row_sum_in_warps) << longer.name();
      const auto& defines = at_most.spec().defines;
      EXPECT_NE(std::find(defines.begin(), defines.end(), "L2NORM_ROW_SUM_IN_WARPS=1"),
                defines.end());
      for (const auto kind :
           {detail::cuda::KernelKind::staged, detail::cuda::KernelKind::split_streamed}) {
        EXPECT_FALSE(at_most.with_kind(kind).row_sum_in_warps) << at_most.with_kind(kind).name();
      }
    }
  }
}

// Small batches may get a layout of one vector per thread; it must keep the sum order of the
// large-batch layout (two vectors per thread become one vector on each of twice the threads,
// all within one warp), so that a row's bits never depend on its batch. The GPU side of this is
// CudaNumerics.ShortRowsDoNotDependOnTheRowCount.
TEST(CudaKernelVariants, RowCountOnlyPicksALayoutOfTheSameSumOrder) {
  int switched = 0;
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    for (const int width : {16, 8, 4, 2}) {
      if (width < static_cast<int>(dtype_size(dtype))) continue;
      for (std::int64_t dim = width; dim <= 4096; dim += width) {
        const auto large = detail::cuda::choose_l2_norm_variant(
            dtype, dim, width, EpsMode::add, false, std::int64_t{1} << 24, kH100);
        const auto small =
            detail::cuda::choose_l2_norm_variant(dtype, dim, width, EpsMode::add, false, 1, kH100);
        // One vector per thread marks the small-batch layout (the kernel stores before its
        // rare-path check there); large batches never get it.
        EXPECT_TRUE(large.kind != detail::cuda::KernelKind::rows || large.items >= 2)
            << large.name();
        if (small.packed() == large.packed()) continue;
        ++switched;
        EXPECT_EQ(large.items, 2) << small.name() << " vs " << large.name();
        EXPECT_EQ(small.items, 1) << small.name();
        EXPECT_EQ(small.threads_per_row, 2 * large.threads_per_row) << small.name();
        EXPECT_LE(small.threads_per_row, 32) << small.name();
      }
    }
  }
  EXPECT_GT(switched, 0);
}

// Every dim from 1 to the split threshold (and some beyond) maps onto a variant in the
// all-variants list, so compiling that list covers everything the dispatcher can pick.
TEST(CudaKernelVariants, AllVariantsListCoversEveryDispatchChoice) {
  std::set<std::uint64_t> listed;
  for (const auto& variant : detail::cuda::all_l2_norm_variants()) listed.insert(variant.packed());
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    for (std::int64_t dim = 1; dim <= detail::cuda::kMaxRowsKernelDim + 64; ++dim) {
      for (const auto& variant :
           detail::cuda::l2_norm_variants_for(dtype, dim, EpsMode::clamp, true)) {
        ASSERT_TRUE(listed.count(variant.packed())) << variant.name() << " dim " << dim;
      }
    }
    for (const std::int64_t dim :
         {std::int64_t{1} << 20, std::int64_t{1} << 22, std::int64_t{3000001}}) {
      for (const auto& variant :
           detail::cuda::l2_norm_variants_for(dtype, dim, EpsMode::add, false)) {
        ASSERT_TRUE(listed.count(variant.packed())) << variant.name() << " dim " << dim;
      }
    }
  }
}

TEST(CudaKernelVariants, EveryVariantCompilesForSm80AndSm90) {
  KernelRegistry registry;
  detail::cuda::register_l2_norm_sources(registry);
  const std::vector<L2NormVariant> variants = distinct(detail::cuda::all_l2_norm_variants());
  struct Job {
    const L2NormVariant* variant;
    int arch;
  };
  std::vector<Job> jobs;
  for (const int arch : {80, 90}) {
    for (const auto& variant : variants) jobs.push_back({&variant, arch});
  }
  std::atomic<std::size_t> next{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  const auto worker = [&] {
    for (std::size_t i = next++; i < jobs.size(); i = next++) {
      try {
        const std::vector<char> cubin =
            registry.compile_for_arch(jobs[i].variant->spec(), jobs[i].arch);
        if (cubin.size() < 64) throw std::runtime_error("cubin too small");
      } catch (const std::exception& error) {
        std::lock_guard lock(failures_mutex);
        failures.push_back(jobs[i].variant->name() + " sm_" + std::to_string(jobs[i].arch) + ": " +
                           error.what());
      }
    }
  };
  std::vector<std::thread> threads;
  const unsigned thread_count = std::max(2u, std::thread::hardware_concurrency());
  for (unsigned t = 0; t < thread_count; ++t) threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();
  for (const auto& failure : failures) ADD_FAILURE() << failure;
  EXPECT_EQ(registry.stats().compiles, jobs.size());
  std::printf("compiled %zu variants x 2 archs\n", variants.size());
}

}  // namespace
}  // namespace l2norm

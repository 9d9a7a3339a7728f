// The l2_norm_pair planner, without a GPU: one launch of the pair kernel when both targets take
// the rows kernel, each half with the variant its own l2_norm plan picks; two l2_norm launches
// otherwise; prewarm holds every pair kernel dispatch may pick; and, through NVRTC, pair kernels
// of every dtype pair, vector width and layout compile for sm_80 and sm_90.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/l2_norm_pair_plan.hpp"
#include "cuda/l2_norm_plan.hpp"
#include "l2norm/l2norm.hpp"
#include "plan_test_support.hpp"

namespace l2norm {
namespace {

using detail::cuda::DeviceCaps;
using detail::cuda::KernelKind;
using detail::cuda::L2NormPairPlan;
using detail::cuda::L2NormPairVariant;

using testing::kA100;
using testing::kH200;

detail::L2NormPairCall pair_call(const detail::L2NormCall& first,
                                 const detail::L2NormCall& second) {
  return {first, second, first.dtype, first.rows + second.rows, first.dim};
}

TEST(CudaPairPlanner, DecodeQAndKRunInOneLaunchWithTheirOwnVariants) {
  for (const DeviceCaps* caps : {&kH200, &kA100}) {
    for (const std::int64_t tokens : {1, 32, 2048, 65536}) {
      const auto q =
          testing::contiguous_l2_norm_call(DType::bf16, tokens * 16, 128, 16, 0.08838834764f);
      const auto k = testing::contiguous_l2_norm_call(DType::bf16, tokens * 4, 128, 16);
      const L2NormPairPlan plan = detail::cuda::plan_l2_norm_pair(pair_call(q, k), *caps);
      ASSERT_TRUE(plan.one_launch) << tokens;
      const auto q_alone = detail::cuda::plan_l2_norm(q, *caps).variant;
      const auto k_alone = detail::cuda::plan_l2_norm(k, *caps).variant;
      // The same variant as each target's own call, except the shared block size and the launch
      // bounds' blocks per multiprocessor, which the pair kernel leaves unset.
      auto first = plan.variant.first;
      auto second = plan.variant.second;
      EXPECT_EQ(first.block_threads, second.block_threads);
      EXPECT_EQ(plan.block, first.block_threads);
      EXPECT_EQ(first.min_blocks, 0);
      EXPECT_EQ(second.min_blocks, 0);
      first.block_threads = q_alone.block_threads;
      second.block_threads = k_alone.block_threads;
      first.min_blocks = q_alone.min_blocks;
      second.min_blocks = k_alone.min_blocks;
      EXPECT_EQ(first, q_alone) << plan.variant.name();
      EXPECT_EQ(second, k_alone) << plan.variant.name();
      EXPECT_TRUE(plan.variant.first.scaled);
      EXPECT_FALSE(plan.variant.second.scaled);
      // Every row group of each target has a block (up to the grid limit).
      const std::int64_t q_groups = plan.block / plan.variant.first.threads_per_row;
      const std::int64_t k_groups = plan.block / plan.variant.second.threads_per_row;
      EXPECT_EQ(plan.first_blocks, (q.rows + q_groups - 1) / q_groups);
      EXPECT_EQ(plan.grid - plan.first_blocks, (k.rows + k_groups - 1) / k_groups);
      EXPECT_EQ(plan.programmatic, caps->arch >= 90);
    }
  }
}

TEST(CudaPairPlanner, DifferentDTypesAndDimsStillOneLaunch) {
  const auto a = testing::contiguous_l2_norm_call(DType::f32, 7, 64, 16, 1.0f, EpsMode::clamp);
  const auto b = testing::contiguous_l2_norm_call(DType::f16, 300, 3, 2);
  const L2NormPairPlan plan = detail::cuda::plan_l2_norm_pair(pair_call(a, b), kH200);
  ASSERT_TRUE(plan.one_launch);
  EXPECT_EQ(plan.variant.first.dtype, DType::f32);
  EXPECT_TRUE(plan.variant.first.clamp);
  EXPECT_EQ(plan.variant.second.dtype, DType::f16);
  EXPECT_EQ(plan.variant.second.vector_bytes, 2);
  EXPECT_NE(plan.variant.name().find("l2_norm_pair<l2_norm_rows<f32"), std::string::npos)
      << plan.variant.name();
}

TEST(CudaPairPlanner, LongRowsRunAsTwoL2NormLaunches) {
  const auto a = testing::contiguous_l2_norm_call(DType::f32, 3, 20000, 16);
  const auto b = testing::contiguous_l2_norm_call(DType::bf16, 64, 128, 16);
  const L2NormPairPlan plan = detail::cuda::plan_l2_norm_pair(pair_call(a, b), kH200);
  EXPECT_FALSE(plan.one_launch);
  EXPECT_NE(plan.first.variant.kind, KernelKind::rows);
  EXPECT_EQ(plan.second.variant, detail::cuda::plan_l2_norm(b, kH200).variant);
}

TEST(CudaPairPlanner, PrewarmHoldsEveryPairDispatchPicks) {
  for (const DeviceCaps* caps : {&kH200, &kA100}) {
    for (const auto& [a_dtype, b_dtype] :
         {std::pair{DType::bf16, DType::bf16}, {DType::f32, DType::f16}}) {
      for (const std::int64_t a_dim : {std::int64_t{64}, std::int64_t{128}, std::int64_t{1000}}) {
        const std::int64_t b_dim = 128;
        const L2NormKernelShape a_shape{a_dtype, a_dtype, a_dim, {.scale = 0.5f}};
        const L2NormKernelShape b_shape{b_dtype, b_dtype, b_dim, {}};
        const auto prewarmed = detail::cuda::l2_norm_pair_prewarm_variants(a_shape, b_shape, *caps);
        for (const std::int64_t a_rows : {1, 64, 100000}) {
          for (const std::int64_t b_rows : {1, 100000}) {
            for (const int a_width : {16, 8, 4, 2}) {
              for (const int b_width : {16, 2}) {
                const auto a_bytes = static_cast<std::int64_t>(dtype_size(a_dtype));
                const auto b_bytes = static_cast<std::int64_t>(dtype_size(b_dtype));
                if (a_width < a_bytes || (a_dim * a_bytes) % a_width != 0) continue;
                if (b_width < b_bytes || (b_dim * b_bytes) % b_width != 0) continue;
                const auto plan = detail::cuda::plan_l2_norm_pair(
                    pair_call(
                        testing::contiguous_l2_norm_call(a_dtype, a_rows, a_dim, a_width, 0.5f),
                        testing::contiguous_l2_norm_call(b_dtype, b_rows, b_dim, b_width)),
                    *caps);
                ASSERT_TRUE(plan.one_launch);
                EXPECT_NE(std::find(prewarmed.begin(), prewarmed.end(), plan.variant),
                          prewarmed.end())
                    << plan.variant.name() << " on " << caps->name;
              }
            }
          }
        }
      }
    }
  }
}

TEST(CudaPairKernel, CompilesForSm80AndSm90) {
  KernelRegistry registry;
  testing::register_embedded_sources(registry);
  // Decode q and k (throughput and latency layouts), mixed dtypes and widths, clamp and scale.
  std::vector<L2NormPairVariant> variants;
  const auto add = [&](const L2NormKernelShape& a, const L2NormKernelShape& b) {
    for (const auto& variant : detail::cuda::l2_norm_pair_prewarm_variants(a, b, kH200)) {
      if (std::find(variants.begin(), variants.end(), variant) == variants.end()) {
        variants.push_back(variant);
      }
    }
  };
  add({DType::bf16, DType::bf16, 128, {.scale = 0.08838834764f}}, {DType::bf16, DType::bf16, 128});
  add({DType::f32, DType::f32, 64, {.eps_mode = EpsMode::clamp}}, {DType::f16, DType::f16, 3});
  add({DType::f16, DType::f16, 16384}, {DType::bf16, DType::bf16, 1000, {.scale = 2.0f}});
  add({DType::bf16, DType::f32, 128, {.scale = 0.08838834764f}}, {DType::f32, DType::bf16, 128});
  for (const auto& failure : testing::compile_for_archs(registry, variants, {80, 90})) {
    ADD_FAILURE() << failure;
  }
  std::printf("compiled %zu pair variants x 2 archs\n", variants.size());
}

}  // namespace
}  // namespace l2norm

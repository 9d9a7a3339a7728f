// The l2_norm planner, without a GPU: which kernel and launch shape a call gets on written-out
// device descriptions (an H100, an H200, an A100 and a small sm_86 part), that an output dtype
// apart from the input's keeps the input dtype's plan, which vector width two views allow, that
// prewarm loads exactly what dispatch may pick, and, through NVRTC and
// KernelRegistry::compile_for_arch, that every variant the planner can name with equal dtypes
// compiles for sm_80 and sm_90, and with mixed dtypes every pair in every kernel kind at every
// vector width (all_l2_norm_variants says why that set suffices). This is the CI check that the
// kernels the library may JIT at run time do compile.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "cuda/l2_norm_plan.hpp"
#include "l2norm/l2norm.hpp"
#include "ops/views.hpp"
#include "plan_test_support.hpp"

namespace l2norm {
namespace {

using detail::cuda::DeviceCaps;
using detail::cuda::KernelKind;
using detail::cuda::L2NormPlan;
using detail::cuda::L2NormVariant;
using testing::kA100;
using testing::kDTypes;
using testing::kH100;
using testing::kH200;
using testing::kSm86;

// A contiguous call of rows x dim, with the widest vector the row length allows.
detail::L2NormCall contiguous_call(DType dtype, std::int64_t rows, std::int64_t dim,
                                   EpsMode eps_mode = EpsMode::add) {
  return testing::contiguous_l2_norm_call(dtype, rows, dim,
                                          testing::widest_vector_bytes(dtype, dim), 1.0f, eps_mode);
}

L2NormVariant planned(DType dtype, std::int64_t dim, int width, std::int64_t rows,
                      const DeviceCaps& caps) {
  detail::L2NormCall call = contiguous_call(dtype, rows, dim);
  call.vector_bytes = width;
  return detail::cuda::plan_l2_norm(call, caps).variant;
}

std::vector<L2NormVariant> distinct(std::vector<L2NormVariant> variants) {
  std::set<std::string> seen;
  std::vector<L2NormVariant> unique;
  for (const auto& variant : variants) {
    if (seen.insert(variant.name()).second) unique.push_back(variant);
  }
  return unique;
}

// One row of the plan table: a shape on a device and the launch it must get.
struct PlanCase {
  const DeviceCaps* caps;
  DType dtype;
  std::int64_t rows;
  std::int64_t dim;
  const char* variant;
  std::int64_t grid;
  std::int32_t block;
  std::size_t dynamic_shared_bytes;
  bool programmatic;
  // Split kernels: blocks per row, tiles per block, rows per wave, waves, early lines.
  detail::cuda::L2NormSplitShape split;
};

TEST(CudaPlanner, PlansOfTheBenchmarkShapes) {
  const std::int64_t mega = std::int64_t{1} << 20;
  const PlanCase cases[] = {
      // Decode: the latency layout, 16 threads a row, 8 rows a block of 128.
      {&kH100, DType::bf16, 32, 128, "l2_norm_rows<bf16,v16,16x1,add>", 4, 128, 0, true, {}},
      {&kA100, DType::bf16, 32, 128, "l2_norm_rows<bf16,v16,16x1,add>", 4, 128, 0, false, {}},
      {&kH100, DType::bf16, 2048, 128, "l2_norm_rows<bf16,v16,16x1,add>", 256, 128, 0, true, {}},
      // Large batches: the throughput layout, two vectors a thread.
      {&kH100, DType::bf16, 524288, 128, "l2_norm_rows<bf16,v16,8x2,add>", 16384, 256, 0, true, {}},
      {&kH200, DType::f32, 524288, 128, "l2_norm_rows<f32,v16,8x4,add>", 16384, 256, 0, true, {}},
      {&kH200,
       DType::f32,
       1000000,
       768,
       "l2_norm_rows<f32,v16,64x4,add>",
       250000,
       256,
       0,
       true,
       {}},
      {&kH200,
       DType::bf16,
       100000,
       4096,
       "l2_norm_rows<bf16,v16,256x2,add>",
       100000,
       256,
       0,
       true,
       {}},
      {&kH100, DType::f32, 65536, 100, "l2_norm_rows<f32,v16,8x4,add>", 2048, 256, 0, true, {}},
      // Long rows, few of them: split on chip, every row in one wave.
      {&kH100,
       DType::f32,
       64,
       65536,
       "l2_norm_split_on_chip<f32,v16,512x8,add,warp_sum>",
       128,
       512,
       65536,
       false,
       {2, 2, 64, 1, false}},
      {&kH100,
       DType::f32,
       8,
       mega,
       "l2_norm_split_on_chip<f32,v16,512x8,add,warp_sum>",
       128,
       512,
       196608,
       false,
       {16, 4, 8, 1, true}},
      {&kH200,
       DType::f32,
       8,
       mega,
       "l2_norm_split_on_chip<f32,v16,512x8,add,warp_sum>",
       128,
       512,
       196608,
       false,
       {16, 4, 8, 1, true}},
      // 56 MiB moved: more than the H100's L2, less than the H200's, so only the H100 writes
      // early lines.
      {&kH100,
       DType::f32,
       7,
       mega,
       "l2_norm_split_on_chip<f32,v16,512x8,add,warp_sum>",
       112,
       512,
       196608,
       false,
       {16, 4, 7, 1, true}},
      {&kH200,
       DType::f32,
       7,
       mega,
       "l2_norm_split_on_chip<f32,v16,512x8,add,warp_sum>",
       112,
       512,
       196608,
       false,
       {16, 4, 7, 1, false}},
      // Long rows in large batches: staged, one block per row.
      {&kH100,
       DType::bf16,
       4096,
       32768,
       "l2_norm_staged<bf16,v16,512x4,add>",
       4096,
       512,
       65536,
       false,
       {}},
      {&kH200,
       DType::f32,
       4096,
       20000,
       "l2_norm_staged<f32,v16,512x8,add>",
       4096,
       512,
       131072,
       false,
       {}},
      // Rows longer than 3 f32 tiles do not fit one block: split on chip, in waves.
      {&kH100,
       DType::f32,
       512,
       131072,
       "l2_norm_split_on_chip<f32,v16,512x8,add,warp_sum>",
       132,
       512,
       196608,
       false,
       {2, 4, 66, 8, true}},
      // Rows longer than the chip holds: streamed.
      {&kH100,
       DType::f32,
       2,
       16 * mega,
       "l2_norm_split_streamed<f32,v16,512x8,add>",
       128,
       512,
       0,
       false,
       {128, 8, 1, 2, false}},
  };
  for (const PlanCase& c : cases) {
    const L2NormPlan plan =
        detail::cuda::plan_l2_norm(contiguous_call(c.dtype, c.rows, c.dim), *c.caps);
    const std::string shape = std::to_string(c.rows) + " x " + std::to_string(c.dim) + " " +
                              std::string(dtype_name(c.dtype)) + " on " + c.caps->name;
    EXPECT_EQ(plan.variant.name(), c.variant) << shape;
    EXPECT_EQ(plan.grid, c.grid) << shape;
    EXPECT_EQ(plan.block, c.block) << shape;
    EXPECT_EQ(plan.dynamic_shared_bytes, c.dynamic_shared_bytes) << shape;
    EXPECT_EQ(plan.programmatic, c.programmatic) << shape;
    const bool split = plan.variant.kind == KernelKind::split_on_chip ||
                       plan.variant.kind == KernelKind::split_streamed;
    EXPECT_EQ(plan.cooperative, split) << shape;
    if (split) {
      testing::expect_split_shape(plan.split, c.split, shape);
      EXPECT_EQ(plan.split.early_lines, c.split.early_lines) << shape;
    }
  }
}

// What every plan must respect on every device: the grid fits the launch limits (a cooperative
// grid the co-resident blocks), dynamic shared memory stays within what the kernel is loaded to
// allow and what the device offers, and the split rows cover all their tiles.
TEST(CudaPlanner, EveryPlanFitsItsDevice) {
  const std::int64_t dims[] = {1,     7,     100,   128,    768,     4096,    16384,   16388,
                               20000, 32768, 65536, 131072, 1 << 20, 3000001, 1 << 22, 1 << 24};
  const std::int64_t rows_list[] = {1, 2, 8, 47, 131, 132, 133, 1000, 65536};
  for (const DeviceCaps* caps : {&kH100, &kH200, &kA100, &kSm86}) {
    for (const DType dtype : {DType::f32, DType::bf16}) {
      for (const std::int64_t dim : dims) {
        for (const std::int64_t rows : rows_list) {
          const L2NormPlan plan =
              detail::cuda::plan_l2_norm(contiguous_call(dtype, rows, dim), *caps);
          const std::string what = plan.variant.name() + " for " + std::to_string(rows) + " x " +
                                   std::to_string(dim) + " on " + caps->name;
          EXPECT_GE(plan.grid, 1) << what;
          EXPECT_LE(plan.grid, std::int64_t{1} << 30) << what;
          const std::size_t allowed =
              plan.variant.max_dynamic_shared_bytes > 0
                  ? static_cast<std::size_t>(plan.variant.max_dynamic_shared_bytes)
                  : 48 * 1024;
          EXPECT_LE(plan.dynamic_shared_bytes, allowed) << what;
          EXPECT_LE(static_cast<std::size_t>(plan.variant.max_dynamic_shared_bytes),
                    caps->shared_memory_per_block_optin)
              << what;
          if (plan.cooperative) {
            EXPECT_LE(plan.grid, caps->multiprocessors) << what;
            const std::int64_t tiles = detail::cuda::row_tiles(plan.variant, dim);
            EXPECT_GE(plan.split.blocks_per_row * plan.split.tiles_per_block, tiles) << what;
            EXPECT_GE(plan.split.rows_per_wave * plan.split.waves, rows) << what;
            EXPECT_EQ(plan.grid, plan.split.rows_per_wave * plan.split.blocks_per_row) << what;
          }
        }
      }
    }
  }
}

// prewarm_l2_norm loads l2_norm_prewarm_variants: whatever the row count and vector width, the
// plan's variant (with its load-time attribute) is among them, so a prewarmed shape never
// compiles during a CUDA-graph capture.
TEST(CudaPlanner, PrewarmHoldsEveryVariantDispatchPicks) {
  for (const DeviceCaps* caps : {&kH100, &kH200, &kA100, &kSm86}) {
    for (const DType dtype : kDTypes) {
      for (const DType output_dtype : kDTypes) {
        for (const std::int64_t dim :
             {std::int64_t{1}, std::int64_t{100}, std::int64_t{128}, std::int64_t{16384},
              std::int64_t{20000}, std::int64_t{65536}, std::int64_t{1} << 20,
              std::int64_t{1} << 24}) {
          const auto prewarmed = detail::cuda::l2_norm_prewarm_variants(
              dtype, output_dtype, dim, EpsMode::clamp, true, *caps);
          for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{131}, std::int64_t{4096}}) {
            for (const int width : {16, 8, 4, 2}) {
              const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
              if (width < element_bytes || (dim * element_bytes) % width != 0) continue;
              detail::L2NormCall call = contiguous_call(dtype, rows, dim, EpsMode::clamp);
              call.output_dtype = output_dtype;
              call.vector_bytes = width;
              call.scale = 2.0f;
              call.scaled = true;
              const L2NormVariant variant = detail::cuda::plan_l2_norm(call, *caps).variant;
              EXPECT_NE(std::find(prewarmed.begin(), prewarmed.end(), variant), prewarmed.end())
                  << variant.name() << " for " << rows << " x " << dim << " on " << caps->name;
            }
          }
        }
      }
    }
  }
}

// An output dtype other than the input's changes the kernel's loads and stores only: the kind,
// layout, launch and sum order are those of the call with the input's dtype on both sides and the
// same vector width, on every device, dim, width and row count. Only early_lines, which depends
// on the bytes moved, may differ.
TEST(CudaPlanner, MixedDTypesKeepTheInputDTypesPlan) {
  const std::int64_t dims[] = {1,     7,     100,   128,    768,     4096,    16384,  16388,
                               20000, 32768, 65536, 131072, 1 << 20, 3000001, 1 << 24};
  for (const DeviceCaps* caps : {&kH100, &kH200, &kA100, &kSm86}) {
    for (const DType input : kDTypes) {
      for (const DType output : kDTypes) {
        if (input == output) continue;
        for (const std::int64_t dim : dims) {
          for (const std::int64_t rows :
               {std::int64_t{1}, std::int64_t{8}, std::int64_t{133}, std::int64_t{65536}}) {
            detail::L2NormCall call = contiguous_call(input, rows, dim);
            const L2NormPlan same = detail::cuda::plan_l2_norm(call, *caps);
            call.output_dtype = output;
            const L2NormPlan mixed = detail::cuda::plan_l2_norm(call, *caps);
            const std::string what = mixed.variant.name() + " for " + std::to_string(rows) + " x " +
                                     std::to_string(dim) + " on " + caps->name;
            L2NormVariant as_same = mixed.variant;
            EXPECT_EQ(as_same.output_dtype, output) << what;
            as_same.output_dtype = input;
            EXPECT_EQ(as_same, same.variant) << what << " vs " << same.variant.name();
            EXPECT_EQ(mixed.grid, same.grid) << what;
            EXPECT_EQ(mixed.block, same.block) << what;
            EXPECT_EQ(mixed.dynamic_shared_bytes, same.dynamic_shared_bytes) << what;
            EXPECT_EQ(mixed.cooperative, same.cooperative) << what;
            EXPECT_EQ(mixed.programmatic, same.programmatic) << what;
            EXPECT_EQ(mixed.split.blocks_per_row, same.split.blocks_per_row) << what;
            EXPECT_EQ(mixed.split.tiles_per_block, same.split.tiles_per_block) << what;
            EXPECT_EQ(mixed.split.rows_per_wave, same.split.rows_per_wave) << what;
            EXPECT_EQ(mixed.split.waves, same.split.waves) << what;
          }
        }
      }
    }
  }
}

TEST(CudaPlanner, MixedDTypeNamesSpecsAndEarlyLines) {
  detail::L2NormCall decode = contiguous_call(DType::bf16, 524288, 128);
  decode.output_dtype = DType::f32;
  const L2NormVariant rows = detail::cuda::plan_l2_norm(decode, kH100).variant;
  EXPECT_EQ(rows.name(), "l2_norm_rows<bf16->f32,v16,8x2,add>");
  const auto defines = rows.spec().defines;
  const auto defined = [](const std::vector<std::string>& list, const std::string& define) {
    return std::find(list.begin(), list.end(), define) != list.end();
  };
  EXPECT_TRUE(defined(defines, "L2NORM_DTYPE=" + std::to_string(L2NORM_DTYPE_BF16)));
  EXPECT_TRUE(defined(defines, "L2NORM_OUT_DTYPE=" + std::to_string(L2NORM_DTYPE_F32)));
  EXPECT_TRUE(defined(defines, "L2NORM_VEC_BYTES=16"));
  // Equal dtypes keep their names and name the output's dtype in the spec too.
  const L2NormVariant same = planned(DType::bf16, 128, 16, 524288, kH100);
  EXPECT_EQ(same.name(), "l2_norm_rows<bf16,v16,8x2,add>");
  EXPECT_TRUE(
      defined(same.spec().defines, "L2NORM_OUT_DTYPE=" + std::to_string(L2NORM_DTYPE_BF16)));
  // 7 rows of 2^20: 56 MiB moved in f32, more than the H100's 50 MiB of L2, so that plan writes
  // early lines; into bf16 42 MiB, which does not.
  const std::int64_t mega = std::int64_t{1} << 20;
  detail::L2NormCall long_rows = contiguous_call(DType::f32, 7, mega);
  const L2NormPlan f32_plan = detail::cuda::plan_l2_norm(long_rows, kH100);
  long_rows.output_dtype = DType::bf16;
  const L2NormPlan bf16_plan = detail::cuda::plan_l2_norm(long_rows, kH100);
  EXPECT_EQ(bf16_plan.variant.name(), "l2_norm_split_on_chip<f32->bf16,v16,512x8,add,warp_sum>");
  EXPECT_TRUE(f32_plan.split.early_lines);
  EXPECT_FALSE(bf16_plan.split.early_lines);
}

// The widest vector both views allow: a vector is n input elements (n * input bytes, aligned to
// that) and writes n output elements (aligned to min(n * output bytes, 16)).
TEST(CudaPlanner, VectorWidthIsTheWidestBothViewsAllow) {
  struct Case {
    DType input;
    DType output;
    std::int64_t dim;
    std::int64_t input_offset_bytes;
    std::int64_t output_offset_bytes;
    std::int64_t output_row_stride;  // 0: dim
    int vector_bytes;
  };
  const Case cases[] = {
      {DType::bf16, DType::f32, 128, 0, 0, 0, 16},  // 8 elements: 16 bytes in, 2 x 16 out
      {DType::bf16, DType::f32, 128, 0, 4, 0, 2},   // the output is only 4-byte aligned
      {DType::bf16, DType::f32, 128, 0, 8, 0, 4},   // 2 elements: 8 bytes out
      {DType::bf16, DType::f32, 128, 0, 16, 0, 16},
      {DType::bf16, DType::f32, 12, 0, 0, 0, 8},    // a row of 24 input bytes: 4 elements
      {DType::f32, DType::bf16, 128, 0, 0, 0, 16},  // 4 elements: 16 bytes in, 8 out
      {DType::f32, DType::bf16, 128, 0, 8, 0, 16},
      {DType::f32, DType::bf16, 128, 0, 2, 0, 4},  // the output is only 2-byte aligned
      {DType::f32, DType::bf16, 128, 0, 4, 0, 8},
      {DType::f32, DType::bf16, 128, 4, 0, 0, 4},     // the input is only 4-byte aligned
      {DType::f32, DType::bf16, 128, 0, 0, 132, 16},  // output rows 264 bytes apart
      {DType::f32, DType::bf16, 128, 0, 0, 130, 8},   // output rows 260 bytes apart
      {DType::f16, DType::f32, 128, 2, 0, 0, 2},
      {DType::f16, DType::bf16, 128, 0, 8, 0, 8},
      {DType::f32, DType::f32, 128, 0, 4, 0, 4},  // equal dtypes: what both addresses allow
      {DType::bf16, DType::bf16, 128, 0, 0, 0, 16},
  };
  for (const Case& c : cases) {
    auto* base = reinterpret_cast<std::byte*>(std::uintptr_t{1} << 20);
    const std::int64_t rows = 4;
    const std::int64_t output_stride = c.output_row_stride > 0 ? c.output_row_stride : c.dim;
    const TensorView input(base + c.input_offset_bytes, c.input, Device::cpu(), {rows, c.dim});
    const TensorView output(base + (std::int64_t{1} << 20) + c.output_offset_bytes, c.output,
                            Device::cpu(), {rows, c.dim}, {output_stride, 1});
    const int bytes = detail::vector_bytes(input, output, detail::row_layout(input, output));
    EXPECT_EQ(bytes, c.vector_bytes)
        << dtype_name(c.input) << "->" << dtype_name(c.output) << " dim " << c.dim << " offsets "
        << c.input_offset_bytes << "/" << c.output_offset_bytes << " output stride "
        << output_stride;
  }
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

TEST(CudaKernelVariants, ShortRowsKernelDependsOnDimOnly) {
  for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{1} << 24}) {
    const auto short_rows = planned(DType::bf16, 128, 16, rows, kH100);
    EXPECT_EQ(short_rows.kind, detail::cuda::KernelKind::rows);
    EXPECT_EQ(short_rows.threads_per_row * short_rows.items * short_rows.vector_elements(), 128);
    const auto longest_rows =
        planned(DType::f32, detail::cuda::max_rows_kernel_dim(kH100), 16, rows, kH100);
    EXPECT_EQ(longest_rows.kind, detail::cuda::KernelKind::rows);
    const auto longer =
        planned(DType::f32, detail::cuda::max_rows_kernel_dim(kH100) + 4, 16, rows, kH100);
    EXPECT_NE(longer.kind, detail::cuda::KernelKind::rows);
  }
}

// Longer rows go staged (one block per row) once the batch has a row per multiprocessor and one
// block's shared memory holds the row, else to the split kernel; both sum in one order (the GPU
// side: CudaNumerics.StagedRowsMatchTheSplitKernelBitForBit).
TEST(CudaKernelVariants, StagedWhereABlockHoldsTheRowAndEverySmGetsOne) {
  using detail::cuda::KernelKind;
  const auto kind = [](DType dtype, std::int64_t dim, std::int64_t rows, const DeviceCaps& caps) {
    // 16-byte vectors where the row's bytes allow, else one element per vector.
    const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
    const int width = (dim * element_bytes) % 16 == 0 ? 16 : static_cast<int>(element_bytes);
    return planned(dtype, dim, width, rows, caps).kind;
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
  DeviceCaps small = kSm86;
  small.multiprocessors = 84;
  EXPECT_EQ(kind(DType::bf16, 2 * tile, 84, small), KernelKind::staged);
  EXPECT_EQ(kind(DType::f32, 2 * tile, 84, small), KernelKind::split_on_chip);
  EXPECT_EQ(kind(DType::f32, tile + 4, 84, small), KernelKind::split_on_chip);
  EXPECT_EQ(kind(DType::f32, tile, 84, small), KernelKind::rows);
}

// A long dim may run the staged or either split kernel (the batch and the device decide which), so
// all three are in its prewarm set, and each compiles its own mode only.
TEST(CudaKernelVariants, LongDimsListTheStagedAndBothSplitKernels) {
  const auto variants = detail::cuda::l2_norm_variants_for(
      DType::f32, detail::cuda::max_rows_kernel_dim(kH100) * 2, EpsMode::add, false);
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

// On-chip split rows of at most the policy's warp_row_sum_tiles tiles are summed by every warp on
// its own; longer rows, and the staged and streamed kernels, keep the block reduction. The choice
// follows dim alone (the bits are the same either way:
// CudaNumerics.StagedRowsMatchTheSplitKernelBitForBit).
TEST(CudaKernelVariants, WarpsSumOnChipRowsOfAtMost64Tiles) {
  const std::int64_t tile = 16384;
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{8}, std::int64_t{1} << 20}) {
      const std::int64_t warp_sum_tiles = kL2NormPolicySm90.warp_row_sum_tiles;
      const auto at_most = planned(dtype, warp_sum_tiles * tile, 16, rows, kH100);
      const auto longer = planned(dtype, warp_sum_tiles * tile + 8, 16, rows, kH100);
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
        const auto large = planned(dtype, dim, width, std::int64_t{1} << 24, kH100);
        const auto small = planned(dtype, dim, width, 1, kH100);
        // One vector per thread marks the small-batch layout (the kernel stores before its
        // rare-path check there); large batches never get it.
        EXPECT_TRUE(large.kind != detail::cuda::KernelKind::rows || large.items >= 2)
            << large.name();
        if (small == large) continue;
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

// Mixed dtypes: the list holds every pair at every vector width in every kernel kind (rows within
// a warp and across warps, the latency layout where the width has one, staged, on chip with and
// without the warps' row sum, streamed), each pair with both eps modes and both scale forms, and
// every mixed variant's layout is one an equal-dtype variant of the list compiles too.
TEST(CudaKernelVariants, AllVariantsListCoversEveryPairInEveryKernelKind) {
  const std::vector<L2NormVariant> all = detail::cuda::all_l2_norm_variants();
  std::set<std::string> layouts_of_equal;
  const auto layout_key = [](L2NormVariant variant) {
    variant.output_dtype = variant.dtype;
    variant.clamp = false;
    variant.scaled = false;
    return variant.name();
  };
  for (const L2NormVariant& variant : all) {
    if (variant.output_dtype == variant.dtype) layouts_of_equal.insert(layout_key(variant));
  }
  for (const DType input : kDTypes) {
    for (const DType output : kDTypes) {
      if (input == output) continue;
      std::set<bool> clamps, scales;
      for (const int width : {16, 8, 4, 2}) {
        if (width < static_cast<int>(dtype_size(input))) continue;
        std::set<std::string> kinds;
        for (const L2NormVariant& variant : all) {
          if (variant.dtype != input || variant.output_dtype != output) continue;
          clamps.insert(variant.clamp);
          scales.insert(variant.scaled);
          EXPECT_TRUE(layouts_of_equal.count(layout_key(variant))) << variant.name();
          if (variant.vector_bytes != width) continue;
          switch (variant.kind) {
            case KernelKind::rows:
              kinds.insert(variant.items == 1              ? "rows latency"
                           : variant.threads_per_row <= 32 ? "rows in a warp"
                                                           : "rows across warps");
              break;
            case KernelKind::staged:
              kinds.insert("staged");
              break;
            case KernelKind::split_on_chip:
              kinds.insert(variant.row_sum_in_warps ? "on chip, warps" : "on chip, block");
              break;
            case KernelKind::split_streamed:
              kinds.insert("streamed");
              break;
          }
        }
        const std::string what = std::string(dtype_name(input)) + "->" +
                                 std::string(dtype_name(output)) + " v" + std::to_string(width);
        // The latency layout exists where a thread holds two vectors: 16-bit 16-byte vectors.
        const bool latency = input != DType::f32 && width == 16;
        EXPECT_EQ(kinds.size(), latency ? 7u : 6u) << what;
        for (const char* kind : {"rows in a warp", "rows across warps", "staged", "on chip, warps",
                                 "on chip, block", "streamed"}) {
          EXPECT_TRUE(kinds.count(kind)) << what << " lacks " << kind;
        }
      }
      EXPECT_EQ(clamps.size(), 2u) << dtype_name(input) << "->" << dtype_name(output);
      EXPECT_EQ(scales.size(), 2u) << dtype_name(input) << "->" << dtype_name(output);
    }
  }
}

// Every dim from 1 to the split threshold (and some beyond) maps onto a variant in the
// all-variants list, so compiling that list covers everything the dispatcher can pick.
TEST(CudaKernelVariants, AllVariantsListCoversEveryDispatchChoice) {
  std::set<std::string> listed;
  for (const auto& variant : detail::cuda::all_l2_norm_variants()) listed.insert(variant.name());
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    for (std::int64_t dim = 1; dim <= detail::cuda::max_rows_kernel_dim(kH100) + 64; ++dim) {
      for (const auto& variant :
           detail::cuda::l2_norm_variants_for(dtype, dim, EpsMode::clamp, true)) {
        ASSERT_TRUE(listed.count(variant.name())) << variant.name() << " dim " << dim;
      }
    }
    for (const std::int64_t dim :
         {std::int64_t{1} << 20, std::int64_t{1} << 22, std::int64_t{3000001}}) {
      for (const auto& variant :
           detail::cuda::l2_norm_variants_for(dtype, dim, EpsMode::add, false)) {
        ASSERT_TRUE(listed.count(variant.name())) << variant.name() << " dim " << dim;
      }
    }
  }
}

TEST(CudaKernelVariants, EveryVariantCompilesForSm80AndSm90) {
  KernelRegistry registry;
  testing::register_embedded_sources(registry);
  const std::vector<L2NormVariant> variants = distinct(detail::cuda::all_l2_norm_variants());
  for (const auto& failure : testing::compile_for_archs(registry, variants, {80, 90})) {
    ADD_FAILURE() << failure;
  }
  EXPECT_EQ(registry.stats().compiles, 2 * variants.size());
  std::printf("compiled %zu variants x 2 archs\n", variants.size());
}

// The rows kernel's launch bounds ask for the policy's share of a multiprocessor's thread slots in
// whole blocks, from the device's own thread count; the other kernels carry none, and the count
// reaches the kernel as a define.
TEST(CudaPlanner, RowsLaunchBoundsFollowTheDevicesThreadSlots) {
  // H200: 2048 threads per multiprocessor, 6/8 of them in 256-thread blocks.
  const L2NormVariant h200 = planned(DType::bf16, 128, 16, 524288, kH200);
  EXPECT_EQ(h200.block_threads, 256);
  EXPECT_EQ(h200.min_blocks, 6);
  const auto defines = h200.spec().defines;
  EXPECT_NE(std::find(defines.begin(), defines.end(), "L2NORM_MIN_BLOCKS=6"), defines.end());
  // A build that spills to meet the bound is replaced by the one without it.
  EXPECT_EQ(h200.spec().spill_fallback_define, "L2NORM_MIN_BLOCKS=0");
  // sm_86: 1536 threads per multiprocessor.
  EXPECT_EQ(planned(DType::bf16, 128, 16, 524288, testing::kSm86).min_blocks, 4);
  // A block wider than the share still asks for one.
  const L2NormVariant wide = planned(DType::f32, 16384, 16, 4096, kH200);
  EXPECT_EQ(wide.block_threads, 1024);
  EXPECT_EQ(wide.min_blocks, 1);
  // The latency layout's smaller block: more of them.
  const L2NormVariant decode = planned(DType::bf16, 128, 16, 32, kH200);
  EXPECT_EQ(decode.items, 1);
  EXPECT_EQ(decode.min_blocks, 2048 * 6 / 8 / decode.block_threads);
  // Long rows: staged and split kernels have launch bounds of their own.
  EXPECT_EQ(planned(DType::f32, 1 << 20, 16, 8, kH200).min_blocks, 0);
  const L2NormVariant staged = planned(DType::f32, 32768, 16, 4096, kH200);
  EXPECT_EQ(staged.min_blocks, 0);
  EXPECT_TRUE(staged.spec().spill_fallback_define.empty());
}

// The rows variants the benchmark shapes get on an H200 compile for sm_90 with their launch
// bounds, or, where ptxas spills to meet them, as the build without the bound; which one each got
// is printed.
TEST(CudaKernelVariants, BoundedRowsVariantsCompileWithTheirSpillFallback) {
  KernelRegistry registry;
  testing::register_embedded_sources(registry);
  const L2NormVariant variants[] = {
      planned(DType::bf16, 128, 16, 524288, kH200), planned(DType::bf16, 4096, 16, 100000, kH200),
      planned(DType::f32, 128, 16, 524288, kH200), planned(DType::f32, 768, 16, 1000000, kH200)};
  for (const L2NormVariant& variant : variants) {
    testing::expect_bounded_build_or_fallback(registry, variant.spec(), variant.min_blocks,
                                              variant.name());
  }
}

}  // namespace
}  // namespace l2norm

// The l2_norm_backward planner, without a GPU: which kernel and launch shape a call gets on an H100
// and an H200, that prewarm loads exactly what dispatch may pick, that the compile list covers
// every kernel shape, and, through NVRTC, that every variant of that list compiles for sm_80 and
// sm_90.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda/l2_norm_backward_plan.hpp"
#include "l2norm/l2norm.hpp"
#include "plan_test_support.hpp"

namespace l2norm {
namespace {

using detail::cuda::BackwardKernelKind;
using detail::cuda::DeviceCaps;
using detail::cuda::L2NormBackwardVariant;
using testing::kA100;
using testing::kDTypes;
using testing::kH100;
using testing::kH200;
using testing::kSm86;

// A contiguous call with the widest vector the row length and dtypes allow.
detail::L2NormBackwardCall contiguous_call(DType dy, DType y, DType dx, std::int64_t rows,
                                           std::int64_t dim, bool from_input = false) {
  detail::L2NormBackwardCall call{};
  call.dy_dtype = dy;
  call.y_dtype = y;
  call.dtype = dx;
  call.rows = rows;
  call.dim = dim;
  call.layout.outer_rank = 1;
  call.layout.outer_sizes[0] = rows;
  for (auto& strides : call.layout.strides) strides[0] = dim;
  call.eps = 1e-6f;
  call.scale = 1.0f;
  call.eps_mode = EpsMode::add;
  call.from_input = from_input;
  const auto widest = std::max({dtype_size(dy), dtype_size(y), dtype_size(dx)});
  call.vector_elements = static_cast<int>(16 / widest);
  while (call.vector_elements > 1 && dim % call.vector_elements != 0) call.vector_elements /= 2;
  return call;
}

struct PlanCase {
  const DeviceCaps* caps;
  DType dy, y, dx;
  std::int64_t rows;
  std::int64_t dim;
  bool from_input;
  const char* variant;
  std::int64_t grid;
  std::int32_t block;
  bool programmatic = true;
};

TEST(CudaBackwardPlanner, PlansOfTypicalShapes) {
  const PlanCase cases[] = {
      // Decode-sized heads: the latency layout, 16 threads of one vector a row, 8 rows in a block
      // of 128; programmatic launches from sm_90 on.
      {&kH100, DType::bf16, DType::bf16, DType::bf16, 32, 128, false,
       "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v8,16x1,add>", 4, 128},
      {&kH200, DType::bf16, DType::bf16, DType::bf16, 32, 128, true,
       "l2_norm_backward_rows<dy=bf16,x=bf16,dx=bf16,v8,16x1,add,from_input>", 4, 128},
      {&kA100, DType::bf16, DType::bf16, DType::bf16, 32, 128, false,
       "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v8,16x1,add>", 4, 128, false},
      {&kH200, DType::bf16, DType::bf16, DType::bf16, 2048, 128, false,
       "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v8,16x1,add>", 256, 128},
      // Batches whose latency layout would fill more than half the thread slots: two vectors a
      // thread.
      {&kH200, DType::bf16, DType::bf16, DType::bf16, 65536, 128, false,
       "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v8,8x2,add>", 2048, 256},
      {&kH200, DType::bf16, DType::bf16, DType::bf16, 524288, 128, true,
       "l2_norm_backward_rows<dy=bf16,x=bf16,dx=bf16,v8,8x2,add,from_input>", 16384, 256},
      // An f32 tensor: 4-element vectors, four a thread, no latency layout.
      {&kH200, DType::f32, DType::f32, DType::f32, 32, 128, false,
       "l2_norm_backward_rows<dy=f32,y=f32,dx=f32,v4,8x4,add>", 1, 256},
      // An f32 tensor anywhere limits the vector to 4 elements.
      {&kH200, DType::f32, DType::bf16, DType::bf16, 524288, 128, false,
       "l2_norm_backward_rows<dy=f32,y=bf16,dx=bf16,v4,8x4,add>", 16384, 256},
      {&kH100, DType::bf16, DType::bf16, DType::f32, 100000, 4096, false,
       "l2_norm_backward_rows<dy=bf16,y=bf16,dx=f32,v4,256x4,add>", 100000, 256},
      // The longest row the rows kernel holds: 1024 threads of 16 values.
      {&kH100, DType::f16, DType::f16, DType::f16, 8, 16384, true,
       "l2_norm_backward_rows<dy=f16,x=f16,dx=f16,v8,1024x2,add,from_input>", 8, 1024},
      // Odd dims: scalar accesses.
      {&kH100, DType::bf16, DType::bf16, DType::bf16, 1000, 7, false,
       "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v1,1x16,add>", 4, 256},
  };
  for (const PlanCase& c : cases) {
    const auto plan = detail::cuda::plan_l2_norm_backward(
        contiguous_call(c.dy, c.y, c.dx, c.rows, c.dim, c.from_input), *c.caps);
    EXPECT_EQ(plan.variant.name(), c.variant) << c.caps->name << " dim " << c.dim;
    EXPECT_EQ(plan.grid, c.grid) << c.variant;
    EXPECT_EQ(plan.block, c.block) << c.variant;
    EXPECT_EQ(plan.programmatic, c.programmatic) << c.variant;
    EXPECT_FALSE(plan.cooperative) << c.variant;
  }
}

// One row of the split kernel's plan table: a shape on a device and the launch it must get.
struct SplitCase {
  const DeviceCaps* caps;
  DType dy, y, dx;
  std::int64_t rows;
  std::int64_t dim;
  bool from_input;
  const char* variant;
  std::int64_t grid;
  std::size_t dynamic_shared_bytes;
  bool cooperative;
  // Blocks per row, tiles per block, rows per wave, waves.
  detail::cuda::L2NormBackwardSplitShape split;
};

// Rows over 16384 elements: tiles of 512 threads x 16 values of dy and of y (8192 elements). An
// H100 or H200 block holds 1 + 3 f32 tiles (64 KiB of shared memory each) or 1 + 7 16-bit ones,
// an A100 block 1 + 2 f32 tiles.
TEST(CudaBackwardPlanner, PlansOfLongRows) {
  const std::int64_t mega = std::int64_t{1} << 20;
  const SplitCase cases[] = {
      // 64 x 65536 f32: 8 tiles a row, 2 blocks of 4, every row on chip in one wave.
      {&kH200,
       DType::f32,
       DType::f32,
       DType::f32,
       64,
       65536,
       false,
       "l2_norm_backward_split_on_chip<dy=f32,y=f32,dx=f32,v4,512x4,add>",
       128,
       196608,
       true,
       {2, 4, 64, 1}},
      {&kH100,
       DType::f32,
       DType::f32,
       DType::f32,
       64,
       65536,
       true,
       "l2_norm_backward_split_on_chip<dy=f32,x=f32,dx=f32,v4,512x4,add,from_input>",
       128,
       196608,
       true,
       {2, 4, 64, 1}},
      // 8 x 1M f32: 128 tiles a row, 32 blocks of 4; 4 rows a wave fill 128 multiprocessors.
      {&kH200,
       DType::f32,
       DType::f32,
       DType::f32,
       8,
       mega,
       false,
       "l2_norm_backward_split_on_chip<dy=f32,y=f32,dx=f32,v4,512x4,add>",
       128,
       196608,
       true,
       {32, 4, 4, 2}},
      {&kH200,
       DType::f32,
       DType::f32,
       DType::f32,
       8,
       mega,
       true,
       "l2_norm_backward_split_on_chip<dy=f32,x=f32,dx=f32,v4,512x4,add,from_input>",
       128,
       196608,
       true,
       {32, 4, 4, 2}},
      // 8 x 1M bf16: 16 blocks of 8 tiles a row, every row in one wave.
      {&kH200,
       DType::bf16,
       DType::bf16,
       DType::bf16,
       8,
       mega,
       false,
       "l2_norm_backward_split_on_chip<dy=bf16,y=bf16,dx=bf16,v8,512x2,add>",
       128,
       229376,
       true,
       {16, 8, 8, 1}},
      // f32 dy with bf16 y: 48 KiB tiles, 1 + 4 a block; 26 blocks a row, 5 rows a wave.
      {&kH200,
       DType::f32,
       DType::bf16,
       DType::bf16,
       8,
       mega,
       false,
       "l2_norm_backward_split_on_chip<dy=f32,y=bf16,dx=bf16,v4,512x4,add>",
       130,
       196608,
       true,
       {26, 5, 5, 2}},
      // A100: 1 + 2 f32 tiles a block, 43 blocks a row, two rows a wave.
      {&kA100,
       DType::f32,
       DType::f32,
       DType::f32,
       8,
       mega,
       false,
       "l2_norm_backward_split_on_chip<dy=f32,y=f32,dx=f32,v4,512x4,add>",
       86,
       131072,
       true,
       {43, 3, 2, 4}},
      // Few rows spread over blocks of one tile each (in registers: no shared memory).
      {&kH100,
       DType::f32,
       DType::f32,
       DType::f32,
       3,
       16385,
       false,
       "l2_norm_backward_split_on_chip<dy=f32,y=f32,dx=f32,v1,512x16,add>",
       9,
       0,
       true,
       {3, 1, 3, 1}},
      {&kH200,
       DType::bf16,
       DType::bf16,
       DType::bf16,
       3,
       300000,
       true,
       "l2_norm_backward_split_on_chip<dy=bf16,x=bf16,dx=bf16,v8,512x2,add,from_input>",
       111,
       0,
       true,
       {37, 1, 3, 1}},
      // Batches that keep every multiprocessor busy with whole rows: one block per row holds it,
      // no exchange, no cooperative launch.
      {&kH100,
       DType::bf16,
       DType::bf16,
       DType::bf16,
       4096,
       32768,
       false,
       "l2_norm_backward_split_on_chip<dy=bf16,y=bf16,dx=bf16,v8,512x2,add>",
       4096,
       98304,
       false,
       {1, 4, 4096, 1}},
      {&kH200,
       DType::f32,
       DType::f32,
       DType::f32,
       4096,
       20000,
       true,
       "l2_norm_backward_split_on_chip<dy=f32,x=f32,dx=f32,v4,512x4,add,from_input>",
       4096,
       131072,
       false,
       {1, 3, 4096, 1}},
      // Rows longer than the co-resident blocks hold (528 f32 tiles): streamed, one partial sum a
      // block.
      {&kH100,
       DType::f32,
       DType::f32,
       DType::f32,
       2,
       16 * mega,
       false,
       "l2_norm_backward_split_streamed<dy=f32,y=f32,dx=f32,v4,512x4,add>",
       128,
       0,
       true,
       {128, 16, 1, 2}},
  };
  for (const SplitCase& c : cases) {
    const auto plan = detail::cuda::plan_l2_norm_backward(
        contiguous_call(c.dy, c.y, c.dx, c.rows, c.dim, c.from_input), *c.caps);
    const std::string shape = std::to_string(c.rows) + " x " + std::to_string(c.dim) + " " +
                              c.variant + " on " + c.caps->name;
    EXPECT_EQ(plan.variant.name(), c.variant) << shape;
    EXPECT_EQ(plan.grid, c.grid) << shape;
    EXPECT_EQ(plan.block, 512) << shape;
    EXPECT_EQ(plan.dynamic_shared_bytes, c.dynamic_shared_bytes) << shape;
    EXPECT_EQ(plan.cooperative, c.cooperative) << shape;
    EXPECT_FALSE(plan.programmatic) << shape;
    testing::expect_split_shape(plan.split, c.split, shape);
  }
}

// What every plan must respect on every device: the grid fits the launch limits and, where the
// blocks of a row exchange partial sums, the co-resident blocks (one per multiprocessor: else the
// blocks that wait could keep the ones they wait for from starting); dynamic shared memory stays
// within what the kernel is loaded to allow and what the device offers; every segment holds a
// tile and the segments cover the row; the rows in flight fit the workspace.
TEST(CudaBackwardPlanner, EveryPlanFitsItsDevice) {
  const std::int64_t dims[] = {1,     7,      128,     4096,    16384,   16385,   20000,  32768,
                               65536, 300000, 1 << 20, 3000001, 1 << 22, 1 << 24, 1 << 26};
  const std::int64_t rows_list[] = {1, 2, 3, 8, 47, 64, 131, 132, 133, 1000, 65536};
  for (const DeviceCaps* caps : {&kH100, &kH200, &kA100, &kSm86}) {
    const auto slots = detail::cuda::backward_split_workspace_slots(*caps);
    for (const auto& [dy, y] :
         {std::pair{DType::f32, DType::f32}, std::pair{DType::bf16, DType::bf16},
          std::pair{DType::f32, DType::bf16}}) {
      for (const std::int64_t dim : dims) {
        for (const std::int64_t rows : rows_list) {
          for (const bool from_input : {false, true}) {
            const auto plan = detail::cuda::plan_l2_norm_backward(
                contiguous_call(dy, y, DType::bf16, rows, dim, from_input), *caps);
            const std::string what = plan.variant.name() + " for " + std::to_string(rows) + " x " +
                                     std::to_string(dim) + " on " + caps->name;
            EXPECT_GE(plan.grid, 1) << what;
            EXPECT_LE(plan.grid, std::int64_t{1} << 30) << what;
            const std::size_t allowed =
                plan.variant.max_dynamic_shared_bytes > 0
                    ? static_cast<std::size_t>(plan.variant.max_dynamic_shared_bytes)
                    : 48 * 1024;
            EXPECT_LE(plan.dynamic_shared_bytes, allowed) << what;
            EXPECT_LE(static_cast<std::size_t>(plan.variant.max_dynamic_shared_bytes) +
                          std::size_t{kL2NormBackwardPolicySm75.split_static_shared_bytes},
                      caps->shared_memory_per_block_optin)
                << what;
            if (plan.variant.kind == BackwardKernelKind::rows) {
              EXPECT_FALSE(plan.cooperative) << what;
              EXPECT_LE(dim, detail::cuda::max_backward_rows_kernel_dim()) << what;
              continue;
            }
            const auto& split = plan.split;
            const std::int64_t tiles = detail::cuda::backward_row_tiles(plan.variant, dim);
            EXPECT_GE(split.blocks_per_row * split.tiles_per_block, tiles) << what;
            EXPECT_LT((split.blocks_per_row - 1) * split.tiles_per_block, tiles) << what;
            EXPECT_GE(split.rows_per_wave * split.waves, rows) << what;
            EXPECT_LT((split.waves - 1) * split.rows_per_wave, rows) << what;
            EXPECT_EQ(plan.grid, split.rows_per_wave * split.blocks_per_row) << what;
            EXPECT_EQ(plan.cooperative, split.blocks_per_row > 1) << what;
            if (plan.variant.kind == BackwardKernelKind::split_on_chip) {
              EXPECT_EQ(plan.dynamic_shared_bytes,
                        std::size_t(split.tiles_per_block - 1) * plan.variant.tile_bytes())
                  << what;
            } else {
              EXPECT_EQ(plan.dynamic_shared_bytes, 0u) << what;
            }
            if (plan.cooperative) {
              EXPECT_LE(plan.grid, caps->multiprocessors) << what;
              const std::int64_t partials_per_row =
                  plan.variant.kind == BackwardKernelKind::split_on_chip ? tiles
                                                                         : split.blocks_per_row;
              EXPECT_LE(split.rows_per_wave * partials_per_row, slots) << what;
              EXPECT_LE(split.blocks_per_row, plan.variant.block_threads) << what;
            }
          }
        }
      }
    }
  }
}

TEST(CudaBackwardPlanner, GridStopsAtThePolicyLimit) {
  const auto plan = detail::cuda::plan_l2_norm_backward(
      contiguous_call(DType::bf16, DType::bf16, DType::bf16, std::int64_t{1} << 40, 20000), kH200);
  EXPECT_EQ(plan.grid, kL2NormBackwardPolicySm75.max_grid_blocks);
}

// The kernel, and for long rows its mode and segments' sum order, depend on dim and the device:
// a row alone and in any batch get the same variant (the rows kernel may swap to its latency
// layout, of the same order: RowCountOnlyPicksALayoutOfTheSameSumOrder), and a streamed row's
// segments do not move with the row count.
TEST(CudaBackwardPlanner, KernelDependsOnDimOnly) {
  const std::int64_t rows_kernel_dim = detail::cuda::max_backward_rows_kernel_dim();
  for (const DeviceCaps* caps : {&kH100, &kA100, &kSm86}) {
    for (const std::int64_t dim :
         {std::int64_t{1}, std::int64_t{100}, std::int64_t{16384}, std::int64_t{16385},
          std::int64_t{300000}, std::int64_t{1} << 20, std::int64_t{1} << 24}) {
      for (const bool from_input : {false, true}) {
        const auto one = detail::cuda::plan_l2_norm_backward(
            contiguous_call(DType::f32, DType::f32, DType::f32, 1, dim, from_input), *caps);
        for (const std::int64_t rows : {2, 5, 131, 4096, 1 << 20}) {
          const auto many = detail::cuda::plan_l2_norm_backward(
              contiguous_call(DType::f32, DType::f32, DType::f32, rows, dim, from_input), *caps);
          const std::string what = many.variant.name() + " for " + std::to_string(rows) + " x " +
                                   std::to_string(dim) + " on " + caps->name;
          if (dim <= rows_kernel_dim) {
            EXPECT_EQ(many.variant.kind, BackwardKernelKind::rows) << what;
            continue;
          }
          // The loaded attribute follows the device, never the batch.
          EXPECT_EQ(one.variant, many.variant) << what;
          if (many.variant.kind == BackwardKernelKind::split_streamed) {
            EXPECT_EQ(one.split.blocks_per_row, many.split.blocks_per_row) << what;
            EXPECT_EQ(one.split.tiles_per_block, many.split.tiles_per_block) << what;
          }
        }
      }
    }
  }
  // On an H100, 2^24 f32 elements (2048 tiles) are more than 132 blocks hold on chip.
  EXPECT_EQ(
      detail::cuda::plan_l2_norm_backward(
          contiguous_call(DType::f32, DType::f32, DType::f32, 1, std::int64_t{1} << 24), kH100)
          .variant.kind,
      BackwardKernelKind::split_streamed);
}

// Small batches may get a layout of one vector per thread; it must keep the sum order of the
// large-batch layout (two vectors per thread become one vector on each of twice the threads, all
// within one warp), so that a row's bits never depend on its batch. The GPU side of this is
// CudaBackward.LatencyLayoutMatchesTheThroughputLayoutBitForBit.
TEST(CudaBackwardPlanner, RowCountOnlyPicksALayoutOfTheSameSumOrder) {
  int switched = 0;
  for (const DType dy : kDTypes) {
    for (const DType y : kDTypes) {
      for (const DType dx : kDTypes) {
        for (std::int64_t dim = 1; dim <= 4096; dim += dim < 300 ? 1 : 61) {
          for (const bool from_input : {false, true}) {
            detail::L2NormBackwardCall call = contiguous_call(dy, y, dx, 1, dim, from_input);
            const auto small = detail::cuda::plan_l2_norm_backward(call, kH200).variant;
            call.rows = std::int64_t{1} << 24;
            const auto large = detail::cuda::plan_l2_norm_backward(call, kH200).variant;
            // One vector per thread marks the latency layout (the kernel stores before its
            // rare-path vote there); large batches never get it.
            EXPECT_GE(large.items, 2) << large.name();
            if (small == large) continue;
            ++switched;
            const std::string what = small.name() + " vs " + large.name();
            EXPECT_EQ(large.items, 2) << what;
            EXPECT_EQ(small.items, 1) << what;
            EXPECT_EQ(small.vector_elements, large.vector_elements) << what;
            EXPECT_EQ(small.threads_per_row, 2 * large.threads_per_row) << what;
            EXPECT_LE(small.threads_per_row, 32) << what;
            EXPECT_EQ(small.kind, BackwardKernelKind::rows) << what;
          }
        }
      }
    }
  }
  // 16-bit dy, y and dx of up to 256 elements, both forms.
  EXPECT_EQ(switched, 8 * 2 * (256 / 8));
}

// Whatever the pointers allow (every vector width dividing dim), dispatch picks a variant that
// prewarm loads.
TEST(CudaBackwardPlanner, PrewarmHoldsEveryVariantDispatchPicks) {
  for (const DType dy : kDTypes) {
    for (const DType dx : kDTypes) {
      for (const std::int64_t dim :
           {std::int64_t{1}, std::int64_t{6}, std::int64_t{64}, std::int64_t{128},
            std::int64_t{256}, std::int64_t{1000}, std::int64_t{16384}, std::int64_t{70000},
            std::int64_t{300000}, std::int64_t{1} << 20, std::int64_t{1} << 24}) {
        for (const bool from_input : {false, true}) {
          const detail::L2NormBackwardPrewarm request{
              dy, DType::bf16, dx, dim, {.scale = 2.0f, .eps_mode = EpsMode::clamp}, from_input};
          for (const DeviceCaps* caps : {&kH100, &kH200, &kA100, &kSm86}) {
            const auto prewarmed = detail::cuda::l2_norm_backward_prewarm_variants(request, *caps);
            for (const std::int64_t rows : {1, 10, 131, 4096, 1 << 20}) {
              detail::L2NormBackwardCall call =
                  contiguous_call(dy, DType::bf16, dx, rows, dim, from_input);
              call.eps_mode = EpsMode::clamp;
              call.scale = 2.0f;
              call.scaled = true;
              for (int elements = call.vector_elements; elements >= 1; elements /= 2) {
                call.vector_elements = elements;
                const auto planned = detail::cuda::plan_l2_norm_backward(call, *caps).variant;
                EXPECT_NE(std::find(prewarmed.begin(), prewarmed.end(), planned), prewarmed.end())
                    << planned.name() << " for " << rows << " rows on " << caps->name;
              }
            }
          }
        }
      }
    }
  }
}

// The compile list holds every (dtypes, vector width, kernel) shape, each kernel with every
// combination of the flags somewhere, every group size of the rows kernel at every vector width
// and in both forms, and every group size of its latency layout.
TEST(CudaBackwardKernelVariants, AllVariantsListCoversEveryKernelShape) {
  const auto variants = detail::cuda::all_l2_norm_backward_variants();
  std::set<std::tuple<DType, DType, DType, int, BackwardKernelKind>> shapes;
  std::set<std::tuple<int, int, bool>> groups;
  std::set<std::pair<BackwardKernelKind, int>> flags;
  for (const auto& v : variants) {
    shapes.insert({v.dy_dtype, v.y_dtype, v.dx_dtype, v.vector_elements, v.kind});
    if (v.kind == BackwardKernelKind::rows) {
      groups.insert({v.threads_per_row, v.items, v.from_input});
    }
    flags.insert({v.kind, int(v.clamp) | int(v.scaled) << 1 | int(v.from_input) << 2});
  }
  constexpr BackwardKernelKind kKinds[] = {BackwardKernelKind::rows,
                                           BackwardKernelKind::split_on_chip,
                                           BackwardKernelKind::split_streamed};
  for (const DType dy : kDTypes) {
    for (const DType y : kDTypes) {
      for (const DType dx : kDTypes) {
        const auto widest = std::max({dtype_size(dy), dtype_size(y), dtype_size(dx)});
        for (int elements = int(16 / widest); elements >= 1; elements /= 2) {
          for (const auto kind : kKinds) {
            EXPECT_TRUE(shapes.count({dy, y, dx, elements, kind}))
                << dtype_name(dy) << dtype_name(y) << dtype_name(dx) << " v" << elements;
          }
        }
      }
    }
  }
  for (int threads = 1; threads <= 1024; threads *= 2) {
    for (const int items : {2, 4, 8, 16}) {
      EXPECT_TRUE(groups.count({threads, items, false}) || groups.count({threads, items, true}))
          << threads << " x " << items;
    }
    for (const bool from_input : {false, true}) {
      EXPECT_TRUE(groups.count({threads, 2, from_input}) || groups.count({threads, 16, from_input}))
          << threads << (from_input ? " from input" : " from output");
    }
  }
  // The latency layout: twice the threads of the 8 x 2 layouts of up to 16 threads.
  for (int threads = 2; threads <= 32; threads *= 2) {
    EXPECT_TRUE(groups.count({threads, 1, false}) || groups.count({threads, 1, true})) << threads;
  }
  for (const auto kind : kKinds) {
    for (int flag = 0; flag < 8; ++flag) {
      EXPECT_TRUE(flags.count({kind, flag})) << int(kind) << " flags " << flag;
    }
  }
}

// Every variant dispatch may pick (prewarm's lists, which hold the plan's choice:
// PrewarmHoldsEveryVariantDispatchPicks) meets the compile list in both of what the list covers:
// its kernel with its dtypes and vector width, and its kernel with its thread layout. (The list
// does not build their product, nor every flag with every shape: those only switch code on and
// off, and AllVariantsListCoversEveryKernelShape checks each kernel meets every flag.)
TEST(CudaBackwardKernelVariants, AllVariantsListCoversEveryDispatchChoice) {
  const auto types = [](const L2NormBackwardVariant& v) {
    return std::tuple{v.kind, v.dy_dtype, v.y_dtype, v.dx_dtype, v.vector_elements};
  };
  const auto threads = [](const L2NormBackwardVariant& v) {
    return std::tuple{v.kind, v.threads_per_row, v.items, v.block_threads};
  };
  std::set<decltype(types(L2NormBackwardVariant{}))> listed_types;
  std::set<decltype(threads(L2NormBackwardVariant{}))> listed_threads;
  for (const auto& variant : detail::cuda::all_l2_norm_backward_variants()) {
    listed_types.insert(types(variant));
    listed_threads.insert(threads(variant));
  }
  std::vector<std::int64_t> dims;
  for (std::int64_t dim = 1; dim <= 512; ++dim) dims.push_back(dim);
  for (std::int64_t dim = 520; dim <= 16384 + 64; dim += 88) dims.push_back(dim);
  for (const std::int64_t dim : {std::int64_t{300000}, std::int64_t{1} << 20, std::int64_t{3000001},
                                 std::int64_t{1} << 24}) {
    dims.push_back(dim);
  }
  for (const DeviceCaps* caps : {&kH100, &kA100}) {
    for (const DType dy : kDTypes) {
      for (const DType y : kDTypes) {
        for (const std::int64_t dim : dims) {
          for (const bool from_input : {false, true}) {
            const detail::L2NormBackwardPrewarm request{
                dy, y, DType::bf16, dim, {.scale = 0.5f, .eps_mode = EpsMode::clamp}, from_input};
            for (const auto& variant :
                 detail::cuda::l2_norm_backward_prewarm_variants(request, *caps)) {
              ASSERT_TRUE(listed_types.count(types(variant)))
                  << variant.name() << " dim " << dim << " on " << caps->name;
              ASSERT_TRUE(listed_threads.count(threads(variant)))
                  << variant.name() << " dim " << dim << " on " << caps->name;
            }
          }
        }
      }
    }
  }
}

TEST(CudaBackwardKernelVariants, NamesAreDistinctPerVariant) {
  const auto variants = detail::cuda::all_l2_norm_backward_variants();
  std::set<std::string> names;
  for (const auto& variant : variants) names.insert(variant.name());
  std::vector<L2NormBackwardVariant> unique;
  for (const auto& variant : variants) {
    if (std::find(unique.begin(), unique.end(), variant) == unique.end()) unique.push_back(variant);
  }
  EXPECT_EQ(names.size(), unique.size());
}

TEST(CudaBackwardKernelVariants, EveryVariantCompilesForSm80AndSm90) {
  KernelRegistry registry;
  testing::register_embedded_sources(registry);
  std::vector<L2NormBackwardVariant> variants;
  for (const auto& variant : detail::cuda::all_l2_norm_backward_variants()) {
    if (std::find(variants.begin(), variants.end(), variant) == variants.end()) {
      variants.push_back(variant);
    }
  }
  const std::vector<std::string> failures =
      testing::compile_for_archs(registry, variants, {80, 90});
  for (std::size_t i = 0; i < failures.size() && i < 5; ++i) ADD_FAILURE() << failures[i];
  EXPECT_TRUE(failures.empty()) << failures.size() << " variants failed";
  EXPECT_EQ(registry.stats().compiles, 2 * variants.size());
  std::printf("compiled %zu backward variants x 2 archs\n", variants.size());
}

// The backward rows kernel's launch bounds ask for the policy's share of a multiprocessor's thread
// slots in whole blocks, from the device's own thread count; the split kernel carries none.
TEST(CudaBackwardPlanner, RowsLaunchBoundsFollowTheDevicesThreadSlots) {
  const auto plan = [](std::int64_t rows, std::int64_t dim, const DeviceCaps& caps) {
    return detail::cuda::plan_l2_norm_backward(
        contiguous_call(DType::bf16, DType::bf16, DType::bf16, rows, dim), caps);
  };
  const auto h200 = plan(524288, 128, kH200).variant;
  EXPECT_EQ(h200.block_threads, 256);
  EXPECT_EQ(h200.min_blocks, 5);  // 5/8 of 2048 threads
  const auto defines = h200.spec().defines;
  EXPECT_NE(std::find(defines.begin(), defines.end(), "L2NORM_MIN_BLOCKS=5"), defines.end());
  EXPECT_EQ(h200.spec().spill_fallback_define, "L2NORM_MIN_BLOCKS=0");
  EXPECT_TRUE(plan(8, 1 << 20, kH200).variant.spec().spill_fallback_define.empty());
  EXPECT_EQ(plan(524288, 128, testing::kSm86).variant.min_blocks, 3);  // 5/8 of 1536
  EXPECT_EQ(plan(4096, 16384, kH200).variant.min_blocks, 1);           // 1024-thread blocks
  EXPECT_EQ(plan(8, 1 << 20, kH200).variant.min_blocks, 0);            // split
}

// The bounded backward rows variants of the benchmark's regular shapes compile for sm_90 with their
// launch bounds, or, where ptxas spills to meet them, as the build without; which one is printed.
TEST(CudaBackwardKernelVariants, BoundedRowsVariantsCompileWithTheirSpillFallback) {
  KernelRegistry registry;
  testing::register_embedded_sources(registry);
  const auto plan = [](DType dtype, std::int64_t rows, std::int64_t dim) {
    return detail::cuda::plan_l2_norm_backward(contiguous_call(dtype, dtype, dtype, rows, dim),
                                               kH200)
        .variant;
  };
  for (const auto& variant : {plan(DType::bf16, 524288, 128), plan(DType::bf16, 100000, 4096),
                              plan(DType::f32, 524288, 128), plan(DType::f32, 1000000, 768)}) {
    testing::expect_bounded_build_or_fallback(registry, variant.spec(), variant.min_blocks,
                                              variant.name());
  }
}

}  // namespace
}  // namespace l2norm

// The l2_norm_backward planner, without a GPU: which kernel and launch shape a call gets on an H100
// and an H200, that prewarm loads exactly what dispatch may pick, that the compile list covers
// every kernel shape, and, through NVRTC, that every variant of that list compiles for sm_80 and
// sm_90.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cuda/embedded_kernels.hpp"
#include "cuda/l2_norm_backward_plan.hpp"
#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

using detail::cuda::BackwardKernelKind;
using detail::cuda::DeviceCaps;
using detail::cuda::L2NormBackwardVariant;

const DeviceCaps kH100{"NVIDIA H100 80GB HBM3", 90, 132, 32, 2048, 232448, 85030011904,
                       std::size_t{50} << 20};
const DeviceCaps kH200{"NVIDIA H200", 90,     132,          32,
                       2048,          232448, 150754820096, std::size_t{60} << 20};
const DeviceCaps kA100{"NVIDIA A100-SXM4-80GB", 80, 108, 32, 2048, 166912, 85094301696,
                       std::size_t{40} << 20};
constexpr DType kDTypes[] = {DType::f32, DType::f16, DType::bf16};

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
      // Longer rows: the looped kernel, one block of 512 per row.
      {&kH100, DType::f32, DType::f32, DType::f32, 3, 16385, false,
       "l2_norm_backward_looped<dy=f32,y=f32,dx=f32,v1,512x16,add>", 3, 512, false},
      {&kH200, DType::bf16, DType::bf16, DType::bf16, 3, 70000, true,
       "l2_norm_backward_looped<dy=bf16,x=bf16,dx=bf16,v8,512x2,add,from_input>", 3, 512, false},
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
  }
}

TEST(CudaBackwardPlanner, GridStopsAtThePolicyLimit) {
  const auto plan = detail::cuda::plan_l2_norm_backward(
      contiguous_call(DType::bf16, DType::bf16, DType::bf16, std::int64_t{1} << 40, 20000), kH200);
  EXPECT_EQ(plan.grid, kL2NormBackwardPolicySm75.max_grid_blocks);
}

TEST(CudaBackwardPlanner, KernelDependsOnDimOnly) {
  for (const std::int64_t dim : {std::int64_t{1}, std::int64_t{100}, std::int64_t{16384},
                                 std::int64_t{16385}, std::int64_t{1} << 20}) {
    const auto one = detail::cuda::plan_l2_norm_backward(
        contiguous_call(DType::f16, DType::f16, DType::f16, 1, dim), kH100);
    const auto many = detail::cuda::plan_l2_norm_backward(
        contiguous_call(DType::f16, DType::f16, DType::f16, 1 << 20, dim), kH100);
    EXPECT_EQ(one.variant, many.variant) << dim;
    EXPECT_EQ(one.variant.kind, dim <= detail::cuda::max_backward_rows_kernel_dim()
                                    ? BackwardKernelKind::rows
                                    : BackwardKernelKind::looped);
  }
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
            std::int64_t{256}, std::int64_t{1000}, std::int64_t{16384}, std::int64_t{70000}}) {
        for (const bool from_input : {false, true}) {
          const detail::L2NormBackwardPrewarm request{
              dy, DType::bf16, dx, dim, {.scale = 2.0f, .eps_mode = EpsMode::clamp}, from_input};
          for (const DeviceCaps* caps : {&kH100, &kH200, &kA100}) {
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

// The compile list holds every (dtypes, vector width, kind) shape, each flag with both values
// somewhere, and every group size of the rows kernel in both forms.
TEST(CudaBackwardKernelVariants, AllVariantsListCoversEveryKernelShape) {
  const auto variants = detail::cuda::all_l2_norm_backward_variants();
  std::set<std::tuple<DType, DType, DType, int, BackwardKernelKind>> shapes;
  std::set<std::pair<int, bool>> groups;
  std::set<int> flags;
  for (const auto& v : variants) {
    shapes.insert({v.dy_dtype, v.y_dtype, v.dx_dtype, v.vector_elements, v.kind});
    if (v.kind == BackwardKernelKind::rows) groups.insert({v.threads_per_row, v.from_input});
    flags.insert(int(v.clamp) | int(v.scaled) << 1 | int(v.from_input) << 2);
  }
  for (const DType dy : kDTypes) {
    for (const DType y : kDTypes) {
      for (const DType dx : kDTypes) {
        const auto widest = std::max({dtype_size(dy), dtype_size(y), dtype_size(dx)});
        for (int elements = int(16 / widest); elements >= 1; elements /= 2) {
          for (const auto kind : {BackwardKernelKind::rows, BackwardKernelKind::looped}) {
            EXPECT_TRUE(shapes.count({dy, y, dx, elements, kind}))
                << dtype_name(dy) << dtype_name(y) << dtype_name(dx) << " v" << elements;
          }
        }
      }
    }
  }
  for (int threads = 1; threads <= 1024; threads *= 2) {
    EXPECT_TRUE(groups.count({threads, false}) && groups.count({threads, true})) << threads;
  }
  EXPECT_EQ(flags.size(), 8u);
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
  for (const auto& source : detail::cuda::embedded_kernel_sources()) {
    registry.register_source(source.name, source.text);
  }
  std::vector<L2NormBackwardVariant> variants;
  for (const auto& variant : detail::cuda::all_l2_norm_backward_variants()) {
    if (std::find(variants.begin(), variants.end(), variant) == variants.end()) {
      variants.push_back(variant);
    }
  }
  struct Job {
    const L2NormBackwardVariant* variant;
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
  for (std::size_t i = 0; i < failures.size() && i < 5; ++i) ADD_FAILURE() << failures[i];
  EXPECT_TRUE(failures.empty()) << failures.size() << " variants failed";
  EXPECT_EQ(registry.stats().compiles, jobs.size());
  std::printf("compiled %zu backward variants x 2 archs\n", variants.size());
}

}  // namespace
}  // namespace l2norm

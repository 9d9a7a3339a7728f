// l2_norm_backward_rows: rows of up to L2NORM_THREADS_PER_ROW * L2NORM_ITEMS vectors, each row of
// dy and y (or x) held in the registers of one group of threads (several rows per block when the
// group is smaller than the block): dy and y are read from memory once and dx written once. The
// row's sums are each thread's pairwise sum, then group_sum over the group; from the input, the
// sum of squares is the forward rows kernel's for the same layout (l2_norm_rows.cuh).
//
// Two layouts share this kernel (the host picks, l2_norm_backward_plan.cpp): the throughput layout
// with L2NORM_ITEMS >= 2 vectors per thread, and for batches too small to fill the device the
// latency layout with one vector per thread on twice the threads, which sums in the same order.
// On sm_90 and newer the host may launch it programmatically (dependent_launch.cuh).
//
// Defines: those of l2_norm_backward_math.cuh, L2NORM_THREADS_PER_ROW (power of two), L2NORM_ITEMS
// (vectors per thread), L2NORM_BLOCK_THREADS, L2NORM_MIN_BLOCKS (blocks per multiprocessor the
// launch bounds ask for; 0: none).
#include "dependent_launch.cuh"
#include "l2_norm_backward_math.cuh"
#include "reduce.cuh"

namespace l2norm_kernels {
constexpr int kThreadsPerRow = L2NORM_THREADS_PER_ROW;
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kRowsPerBlock = kBlockThreads / kThreadsPerRow;
constexpr int kValues = kItems * kBackwardVec;
constexpr int kScratch = kBlockThreads >= 32 ? kBlockThreads / 32 : 1;
// Only the latency layout keeps one vector per thread; there latency counts and occupancy does
// not, so from the input the kernel stores the common result before the rare-path vote (see the
// kernel).
constexpr bool kStoreFirst = kItems == 1;
static_assert(kBlockThreads % kThreadsPerRow == 0 && kBlockThreads % 32 == 0, "bad block shape");
static_assert(!kStoreFirst || kThreadsPerRow <= 32, "the latency layout's group fits a warp");

// The vector of `item` a lane holds: lane, lane + kThreadsPerRow, ... (as l2_norm_rows.cuh).
__device__ __forceinline__ long long vector_of(int lane, int item) {
  return lane + static_cast<long long>(item) * kThreadsPerRow;
}

// A row group's values of dy and y (zero past the row's end or for an inactive group member).
__device__ __forceinline__ void load_rows(const L2NormBackwardArgs& args,
                                          const BackwardRowOffsets& offsets, long long vectors,
                                          int lane, bool active, float* dy, float* y) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = vector_of(lane, item);
    if (active && vector < vectors) {
      load_dy(args.dy, offsets.dy + vector * kBackwardVec, dy + item * kBackwardVec);
      load_y(args.y, offsets.y + vector * kBackwardVec, y + item * kBackwardVec);
    } else {
#pragma unroll
      for (int e = 0; e < kBackwardVec; ++e) {
        dy[item * kBackwardVec + e] = 0.0f;
        y[item * kBackwardVec + e] = 0.0f;
      }
    }
  }
}

__device__ __forceinline__ void store_row(void* dx, long long row_offset, long long vectors,
                                          int lane, const float* values) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = vector_of(lane, item);
    if (vector < vectors) {
      store_dx(dx, row_offset + vector * kBackwardVec, values + item * kBackwardVec);
    }
  }
}

// The row's dot product and dx from dy and y (y as the forward computes it); every thread of the
// group must call it.
__device__ __forceinline__ void row_gradient(const float (&dy)[kValues], const float (&y)[kValues],
                                             GradientFactor factor, float scale, float* scratch,
                                             float (&dx)[kValues]) {
  const float dot = group_sum<kThreadsPerRow>(dot_product(dy, y), scratch);
  poison_if_not_finite(factor, dot);
  if (factor.rare) {
#pragma unroll
    for (int i = 0; i < kValues; ++i) dx[i] = gradient<true>(dy[i], y[i], dot, factor, scale);
  } else {
#pragma unroll
    for (int i = 0; i < kValues; ++i) dx[i] = gradient<false>(dy[i], y[i], dot, factor, scale);
  }
}

#if L2NORM_FROM_INPUT
// y as the forward computes it from x (held in `x`) with the row's factor.
__device__ __forceinline__ void recompute_y(const float (&x)[kValues], const GradientFactor& factor,
                                            float (&y)[kValues]) {
#pragma unroll
  for (int i = 0; i < kValues; ++i) y[i] = recomputed_y(x[i], factor);
}

// The factor of a rare row (needs_rare_path of its f32 sum), from the f64 sum of its group's
// values; every thread of the group must call it.
__device__ __forceinline__ GradientFactor rare_row_factor(const float (&x)[kValues], float eps,
                                                          double* scratch) {
  return rare_factor(group_sum<kThreadsPerRow>(sum_of_squares_f64(x), scratch), eps);
}
#endif
}  // namespace l2norm_kernels

namespace l2norm_kernels {
// The offsets of a thread's row in the row group that starts at `first_row` (zero past the last
// row).
__device__ __forceinline__ BackwardRowOffsets backward_group_offsets(const L2NormBackwardArgs& args,
                                                                     long long first_row) {
  const long long row = first_row + threadIdx.x / kThreadsPerRow;
  return row < args.rows ? backward_row_offsets(args, row) : BackwardRowOffsets{0, 0, 0};
}
}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS, L2NORM_MIN_BLOCKS)
    l2_norm_backward_rows(const L2NormBackwardArgs args) {
  using namespace l2norm_kernels;
  __shared__ float scratch_f32[kScratch];
#if L2NORM_FROM_INPUT
  __shared__ double scratch_f64[kScratch];
#endif

  const int lane = static_cast<int>(threadIdx.x % kThreadsPerRow);
  const long long vectors = args.dim / kBackwardVec;
  long long first_row = static_cast<long long>(blockIdx.x) * kRowsPerBlock;
  if (first_row >= args.rows) return;
  // The latency layout (decode-sized batches, one group per block) computes its first group's
  // offsets before the wait, as rows_body.cuh does: in a chain of dependent launches their
  // arithmetic runs while the previous kernel finishes. The other layouts compute each group's at
  // the top of its iteration: offsets carried across the loop would cost them the registers their
  // launch bounds leave no room for.
  constexpr bool kOffsetsBeforeWait = kStoreFirst;
  BackwardRowOffsets offsets{0, 0, 0};
  if constexpr (kOffsetsBeforeWait) offsets = backward_group_offsets(args, first_row);
  wait_for_previous_kernel();
  // As early as possible: the next kernel's launch then overlaps this whole kernel.
  allow_next_kernel_launch();
  // Every thread runs the same number of iterations: reductions need the whole warp or block.
  for (;;) {
    // Recomputed rather than carried over with the offsets: fewer values live across the loop.
    const long long row = first_row + threadIdx.x / kThreadsPerRow;
    const bool active = row < args.rows;
    if constexpr (!kOffsetsBeforeWait) offsets = backward_group_offsets(args, first_row);

    float dy[kValues];
    float x_or_y[kValues];
    load_rows(args, offsets, vectors, lane, active, dy, x_or_y);
    float dx[kValues];

#if L2NORM_FROM_INPUT
    // Recompute the forward's factor and y, the rare path as one group.
    const float sum = group_sum<kThreadsPerRow>(sum_of_squares(x_or_y), scratch_f32);
    const bool rare = active && needs_rare_path(sum);
    const GradientFactor common = common_factor(sum, args.eps);
    float y[kValues];
    if constexpr (kStoreFirst) {
      // The common result is stored before the rare-path vote, so the vote and its branch are
      // off the dependent chain; a rare row is then computed again, from dy and x still in
      // registers, and stored again. The same thread writes both (in place, over dy in memory
      // only), so the second wins and nothing can observe the first before the kernel ends. The
      // group fits a warp, so the vote is warp-uniform and the whole warp sums again.
      recompute_y(x_or_y, common, y);
      row_gradient(dy, y, common, args.scale, scratch_f32, dx);
      if (active) store_row(args.dx, offsets.dx, vectors, lane, dx);
      if (group_any<kThreadsPerRow>(rare)) {
        const GradientFactor factor = rare_row_factor(x_or_y, args.eps, scratch_f64);
        recompute_y(x_or_y, factor, y);
        row_gradient(dy, y, factor, args.scale, scratch_f32, dx);
        if (rare) store_row(args.dx, offsets.dx, vectors, lane, dx);
      }
    } else {
      GradientFactor factor = common;
      if (group_any<kThreadsPerRow>(rare)) {
        const GradientFactor rare_row = rare_row_factor(x_or_y, args.eps, scratch_f64);
        if (rare) factor = rare_row;
      }
      recompute_y(x_or_y, factor, y);
      row_gradient(dy, y, factor, args.scale, scratch_f32, dx);
      if (active) store_row(args.dx, offsets.dx, vectors, lane, dx);
    }
#else
    const GradientFactor factor =
        stored_factor(active ? args.rstd[row * args.rstd_stride] : 0.0f, args.eps);
    row_gradient(dy, x_or_y, factor, args.scale, scratch_f32, dx);
    if (active) store_row(args.dx, offsets.dx, vectors, lane, dx);
#endif
    first_row += static_cast<long long>(gridDim.x) * kRowsPerBlock;
    if (first_row >= args.rows) return;
    if constexpr (kOffsetsBeforeWait) offsets = backward_group_offsets(args, first_row);
  }
}

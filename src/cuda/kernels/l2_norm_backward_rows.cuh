// l2_norm_backward_rows: rows of up to L2NORM_THREADS_PER_ROW * L2NORM_ITEMS vectors, each row of
// dy and y (or x) held in the registers of one group of threads (several rows per block when the
// group is smaller than the block): dy and y are read from memory once and dx written once. The
// row's sums are each thread's pairwise sum, then group_sum over the group; from the input, the
// sum of squares is the forward rows kernel's for the same layout (l2_norm_rows.cuh).
//
// Defines: those of l2_norm_backward_math.cuh, L2NORM_THREADS_PER_ROW (power of two), L2NORM_ITEMS
// (vectors per thread), L2NORM_BLOCK_THREADS.
#include "l2_norm_backward_math.cuh"
#include "reduce.cuh"

namespace l2norm_kernels {
constexpr int kThreadsPerRow = L2NORM_THREADS_PER_ROW;
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kRowsPerBlock = kBlockThreads / kThreadsPerRow;
constexpr int kValues = kItems * kBackwardVec;
constexpr int kScratch = kBlockThreads >= 32 ? kBlockThreads / 32 : 1;
static_assert(kBlockThreads % kThreadsPerRow == 0 && kBlockThreads % 32 == 0, "bad block shape");

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
}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS)
    l2_norm_backward_rows(const L2NormBackwardArgs args) {
  using namespace l2norm_kernels;
  __shared__ float scratch_f32[kScratch];
#if L2NORM_FROM_INPUT
  __shared__ double scratch_f64[kScratch];
#endif

  const int lane = static_cast<int>(threadIdx.x % kThreadsPerRow);
  const long long vectors = args.dim / kBackwardVec;
  // Every thread runs the same number of iterations: reductions need the whole warp or block.
  for (long long first_row = static_cast<long long>(blockIdx.x) * kRowsPerBlock;
       first_row < args.rows; first_row += static_cast<long long>(gridDim.x) * kRowsPerBlock) {
    const long long row = first_row + threadIdx.x / kThreadsPerRow;
    const bool active = row < args.rows;
    const BackwardRowOffsets offsets =
        active ? backward_row_offsets(args, row) : BackwardRowOffsets{0, 0, 0};

    float dy[kValues];
    float y[kValues];
    load_rows(args, offsets, vectors, lane, active, dy, y);

#if L2NORM_FROM_INPUT
    // y holds x: recompute the forward's factor and y in place, the rare path as one group.
    const float sum = group_sum<kThreadsPerRow>(sum_of_squares(y), scratch_f32);
    const bool rare = active && needs_rare_path(sum);
    GradientFactor factor = common_factor(sum, args.eps);
    if (group_any<kThreadsPerRow>(rare)) {
      const double sum_f64 = group_sum<kThreadsPerRow>(sum_of_squares_f64(y), scratch_f64);
      if (rare) factor = rare_factor(sum_f64, args.eps);
    }
#pragma unroll
    for (int i = 0; i < kValues; ++i) y[i] = recomputed_y(y[i], factor);
#else
    GradientFactor factor =
        stored_factor(active ? args.rstd[row * args.rstd_stride] : 0.0f, args.eps);
#endif

    const float dot = group_sum<kThreadsPerRow>(dot_product(dy, y), scratch_f32);
    poison_if_not_finite(factor, dot);
    float dx[kValues];
#pragma unroll
    for (int i = 0; i < kValues; ++i) dx[i] = gradient(dy[i], y[i], dot, factor, args.scale);
    if (active) store_row(args.dx, offsets.dx, vectors, lane, dx);
  }
}

// l2_norm_rows: rows of up to L2NORM_THREADS_PER_ROW * L2NORM_ITEMS vectors, each row held in the
// registers of one group of threads (several rows per block when the group is smaller than the
// block), so the input is read from memory exactly once.
//
// Defines: L2NORM_DTYPE, L2NORM_VEC_BYTES, L2NORM_THREADS_PER_ROW (power of two), L2NORM_ITEMS
// (vectors per thread), L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED.
#include "reduce.cuh"
#include "row_math.cuh"

namespace l2norm_kernels {
constexpr int kThreadsPerRow = L2NORM_THREADS_PER_ROW;
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kRowsPerBlock = kBlockThreads / kThreadsPerRow;
constexpr int kValues = kItems * kVec;
constexpr int kScratch = kBlockThreads >= 32 ? kBlockThreads / 32 : 1;
// Only the small-batch layout keeps one vector per thread (the latency layout of
// l2_norm_plan.cpp); there latency counts and occupancy does not, so the kernel stores the common
// result before the rare-path vote (see the kernel).
constexpr bool kStoreFirst = kItems == 1;
static_assert(kBlockThreads % kThreadsPerRow == 0 && kBlockThreads % 32 == 0, "bad block shape");

// Programmatic dependent launch (sm_90 and newer; the encoder launches with programmatic stream
// serialization there). The wait returns once the previous kernel of the stream has completed and
// its writes are visible, so no memory is touched before it; without the launch attribute it
// returns at once.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel of the stream begin launching; it still waits for this one to complete
// before touching memory (if it was launched programmatically at all).
__device__ __forceinline__ void allow_next_kernel_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// A row group's values (zero past the row's end or for an inactive group member).
__device__ __forceinline__ void load_row(const void* input, long long row_offset, long long vectors,
                                         int lane, bool active, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = lane + static_cast<long long>(item) * kThreadsPerRow;
    if (active && vector < vectors) {
      load_vector(input, row_offset + vector * kVec, x + item * kVec);
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) x[item * kVec + e] = 0.0f;
    }
  }
}

__device__ __forceinline__ void store_row(void* output, long long row_offset, long long vectors,
                                          int lane, const float* y) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = lane + static_cast<long long>(item) * kThreadsPerRow;
    if (vector < vectors) store_vector(output, row_offset + vector * kVec, y + item * kVec);
  }
}

// y = round(x * inverse) (then * scale), the common path.
__device__ __forceinline__ void scale_common(const float* x, float inverse, float scale, float* y) {
#pragma unroll
  for (int i = 0; i < kValues; ++i) y[i] = common_output(x[i], inverse, scale);
}

// The rare path's inverse norm, from the f64 sum of the group's row; every thread of the group
// must call it.
__device__ __forceinline__ double rare_row_inverse(const float (&x)[kValues], float eps,
                                                   double* scratch) {
  return rare_inverse_norm(group_sum<kThreadsPerRow>(sum_of_squares_f64(x), scratch), eps);
}

__device__ __forceinline__ void scale_rare(const float* x, double inverse, float scale, float* y) {
#pragma unroll
  for (int i = 0; i < kValues; ++i) y[i] = rare_output(x[i], inverse, scale);
}
}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS)
    l2_norm_rows(const L2NormArgs args) {
  using namespace l2norm_kernels;
  __shared__ float scratch_f32[kScratch];
  __shared__ double scratch_f64[kScratch];

  const int lane = static_cast<int>(threadIdx.x % kThreadsPerRow);
  const long long vectors = args.dim / kVec;
  wait_for_previous_kernel();
  // As early as possible: the next kernel's launch then overlaps this whole kernel.
  allow_next_kernel_launch();
  // Every thread runs the same number of iterations: reductions need the whole warp or block.
  for (long long first_row = static_cast<long long>(blockIdx.x) * kRowsPerBlock;
       first_row < args.rows; first_row += static_cast<long long>(gridDim.x) * kRowsPerBlock) {
    const long long row = first_row + threadIdx.x / kThreadsPerRow;
    const bool active = row < args.rows;
    const RowOffsets offsets = active ? row_offsets(args, row) : RowOffsets{0, 0};

    float x[kValues];
    load_row(args.input, offsets.input, vectors, lane, active, x);

    const float sum = group_sum<kThreadsPerRow>(sum_of_squares(x), scratch_f32);
    const float inverse = common_inverse_norm(sum, args.eps);
    const bool rare = active && needs_rare_path(sum);
    float y[kValues];
    if constexpr (kStoreFirst) {
      // The common result is stored before the rare-path vote, so the vote and its branch are
      // off the dependent chain; a rare row is then stored again, from x still in registers, with
      // its f64 scale. The same thread writes both, so the second wins, and nothing can observe
      // the first before the kernel ends. Keeping x and y live together costs registers, hence
      // only here.
      scale_common(x, inverse, args.scale, y);
      if (active) store_row(args.output, offsets.output, vectors, lane, y);
      // Lane 0's rstd follows the same rule: a rare row's second store wins.
      if (active && lane == 0) store_rstd(args, row, inverse);
      if (group_any<kThreadsPerRow>(rare)) {
        const double rare_inverse = rare_row_inverse(x, args.eps, scratch_f64);
        if (rare) {
          scale_rare(x, rare_inverse, args.scale, y);
          store_row(args.output, offsets.output, vectors, lane, y);
          if (lane == 0) store_rstd(args, row, __double2float_rn(rare_inverse));
        }
      }
    } else {
      double rare_inverse = 0.0;
      if (group_any<kThreadsPerRow>(rare)) {
        rare_inverse = rare_row_inverse(x, args.eps, scratch_f64);
      }
      // One branch per row, not a choice per element: the common path never touches f64, which
      // keeps the dependent chain short.
      if (rare) {
        scale_rare(x, rare_inverse, args.scale, y);
      } else {
        scale_common(x, inverse, args.scale, y);
      }
      if (active) store_row(args.output, offsets.output, vectors, lane, y);
      if (active && lane == 0) {
        store_rstd(args, row, rare ? __double2float_rn(rare_inverse) : inverse);
      }
    }
  }
}

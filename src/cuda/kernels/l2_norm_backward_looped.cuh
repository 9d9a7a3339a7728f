// l2_norm_backward_looped: the slow path, for rows longer than the rows kernel holds. One block per
// row loops over the row in steps of L2NORM_BLOCK_THREADS * L2NORM_ITEMS vectors: a pass for each
// sum (from the input: the sum of squares, the f64 one for a rare row, then the dot product; from
// the output: the dot product), then a pass that writes dx. Each pass reads the row again (from
// L2 when it fits), so it moves two to four times the bytes of the rows kernel; it handles any dim
// with 64-bit offsets.
//
// Sum order: a thread's values of one step summed pairwise, the thread's step sums along a binary
// tree over the step index (PairwiseTree), then group_sum over the block. Error grows with
// log2(dim).
//
// Defines: those of l2_norm_backward_math.cuh, L2NORM_ITEMS (vectors per thread per step),
// L2NORM_BLOCK_THREADS (a power of two).
#include "l2_norm_backward_math.cuh"
#include "reduce.cuh"

namespace l2norm_kernels {
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kValues = kItems * kBackwardVec;
constexpr long long kStepVectors = static_cast<long long>(kBlockThreads) * kItems;
static_assert(kBlockThreads % 32 == 0 && (kBlockThreads & (kBlockThreads - 1)) == 0,
              "bad block shape");

// Adds a thread's step sums along a binary tree over the step index: step i joins the subtrees
// before it like carries in a binary counter (the CPU's PairwiseAccumulator, cpu/row_sum.hpp).
template <typename T>
struct PairwiseTree {
  T subtrees[64];
  unsigned long long steps = 0;

  __device__ __forceinline__ void add(T value) {
    int level = 0;
    for (unsigned long long carries = steps; (carries & 1ull) != 0; carries >>= 1, ++level) {
      value = subtrees[level] + value;
    }
    subtrees[level] = value;
    ++steps;
  }

  // The pending subtrees, smallest first; zero for no steps.
  __device__ __forceinline__ T total() const {
    T sum = 0;
    bool first = true;
    int level = 0;
    for (unsigned long long pending = steps; pending != 0; pending >>= 1, ++level) {
      if ((pending & 1ull) == 0) continue;
      sum = first ? subtrees[level] : subtrees[level] + sum;
      first = false;
    }
    return sum;
  }
};

// The thread's vector `item` of step `step`, counted from the row's first vector.
__device__ __forceinline__ long long step_vector(long long step, int item) {
  return step * kStepVectors + threadIdx.x + static_cast<long long>(item) * kBlockThreads;
}

// The thread's values of one step of a tensor (zero past the row's end).
template <typename Load>
__device__ __forceinline__ void load_step(const Load& load, long long step, long long vectors,
                                          float* values) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const long long vector = step_vector(step, item);
    if (vector < vectors) {
      load(vector * kBackwardVec, values + item * kBackwardVec);
    } else {
#pragma unroll
      for (int e = 0; e < kBackwardVec; ++e) values[item * kBackwardVec + e] = 0.0f;
    }
  }
}

// The row's sum of `step_sum(step)` over its steps, in the order above; every thread of the block
// must call it.
template <typename T, typename StepSum>
__device__ __forceinline__ T row_sum(long long steps, const StepSum& step_sum, T* scratch) {
  PairwiseTree<T> tree;
  for (long long step = 0; step < steps; ++step) tree.add(step_sum(step));
  return group_sum<kBlockThreads>(tree.total(), scratch);
}
}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS)
    l2_norm_backward_looped(const L2NormBackwardArgs args) {
  using namespace l2norm_kernels;
  __shared__ float scratch_f32[kBlockThreads / 32];
#if L2NORM_FROM_INPUT
  __shared__ double scratch_f64[kBlockThreads / 32];
#endif

  const long long vectors = args.dim / kBackwardVec;
  const long long steps = (vectors + kStepVectors - 1) / kStepVectors;
  for (long long row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const BackwardRowOffsets offsets = backward_row_offsets(args, row);
    const auto dy_at = [&](long long offset, float* out) {
      load_dy(args.dy, offsets.dy + offset, out);
    };
    const auto y_at = [&](long long offset, float* out) {
      load_y(args.y, offsets.y + offset, out);
    };

#if L2NORM_FROM_INPUT
    const float sum = row_sum<float>(
        steps,
        [&](long long step) {
          float x[kValues];
          load_step(y_at, step, vectors, x);
          return sum_of_squares(x);
        },
        scratch_f32);
    GradientFactor factor = common_factor(sum, args.eps);
    if (needs_rare_path(sum)) {
      const double sum_f64 = row_sum<double>(
          steps,
          [&](long long step) {
            float x[kValues];
            load_step(y_at, step, vectors, x);
            return sum_of_squares_f64(x);
          },
          scratch_f64);
      factor = rare_factor(sum_f64, args.eps);
    }
#else
    GradientFactor factor = stored_factor(args.rstd[row * args.rstd_stride], args.eps);
#endif
    // y of one step: as stored, or recomputed from x.
    const auto load_y_step = [&](long long step, float* y) {
      load_step(y_at, step, vectors, y);
#if L2NORM_FROM_INPUT
#pragma unroll
      for (int i = 0; i < kValues; ++i) y[i] = recomputed_y(y[i], factor);
#endif
    };

    const float dot = row_sum<float>(
        steps,
        [&](long long step) {
          float dy[kValues];
          float y[kValues];
          load_step(dy_at, step, vectors, dy);
          load_y_step(step, y);
          return dot_product(dy, y);
        },
        scratch_f32);
    poison_if_not_finite(factor, dot);

    for (long long step = 0; step < steps; ++step) {
      float dy[kValues];
      float y[kValues];
      load_step(dy_at, step, vectors, dy);
      load_y_step(step, y);
#pragma unroll
      for (int item = 0; item < kItems; ++item) {
        const long long vector = step_vector(step, item);
        if (vector >= vectors) continue;
        float dx[kBackwardVec];
#pragma unroll
        for (int e = 0; e < kBackwardVec; ++e) {
          const int i = item * kBackwardVec + e;
          dx[e] = factor.rare ? gradient<true>(dy[i], y[i], dot, factor, args.scale)
                              : gradient<false>(dy[i], y[i], dot, factor, args.scale);
        }
        store_dx(args.dx, offsets.dx + vector * kBackwardVec, dx);
      }
    }
  }
}

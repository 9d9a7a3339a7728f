// The body of the l2_norm rows kernel as a device function template: rows of up to
// ThreadsPerRow * Items vectors, each row held in the registers of one group of threads (several
// rows per block when the group is smaller than the block), so the input is read from memory
// exactly once and the output written once.
//
// Everything the body depends on is its Config (RowsConfig below): no define is read here, so one
// kernel may run two bodies of different configurations (input and output element types, vector
// width, layout, eps mode, scale), each over its own tensors (l2_norm_rows.cuh instantiates one
// from its defines).
#pragma once

#include "dependent_launch.cuh"
#include "reduce.cuh"
#include "row_math.cuh"

namespace l2norm_kernels {

// A rows-kernel configuration. A vector is VectorBytes of the input (VectorBytes / In::kBytes
// elements); the output moves the same elements in Out (element.cuh's store_vector). A row's sum
// order depends on the vector's element count, Items and ThreadsPerRow only: the output type never
// changes it.
template <class InputElement, class OutputElement, int VectorBytes, int ThreadsPerRow, int Items,
          int BlockThreads, bool Clamp, bool Scaled>
struct RowsConfig {
  typedef InputElement In;
  typedef OutputElement Out;
  static constexpr int kVec = VectorBytes / In::kBytes;  // elements per vector
  static constexpr int kThreadsPerRow = ThreadsPerRow;   // a power of two
  static constexpr int kItems = Items;                   // vectors per thread
  static constexpr int kBlockThreads = BlockThreads;
  static constexpr bool kClamp = Clamp;
  static constexpr bool kScaled = Scaled;
  static constexpr int kRowsPerBlock = BlockThreads / ThreadsPerRow;
  static constexpr int kValues = Items * kVec;
  // The f32 and f64 scratch values the body needs (group_sum's per-warp totals).
  static constexpr int kScratch = BlockThreads >= 32 ? BlockThreads / 32 : 1;
  // Only the small-batch layout keeps one vector per thread (the latency layout of
  // l2_norm_plan.cpp); there latency counts and occupancy does not, so the body stores the common
  // result before the rare-path vote (see l2_norm_rows_body).
  static constexpr bool kStoreFirst = Items == 1;
  static_assert(VectorBytes % In::kBytes == 0 && kVec >= 1, "a vector holds whole elements");
  static_assert(BlockThreads % ThreadsPerRow == 0 && BlockThreads % 32 == 0, "bad block shape");
};

// A row group's values (zero past the row's end or for an inactive group member).
template <class C>
__device__ __forceinline__ void load_row(const void* input, long long row_offset, long long vectors,
                                         int lane, bool active, float* x) {
#pragma unroll
  for (int item = 0; item < C::kItems; ++item) {
    const long long vector = lane + static_cast<long long>(item) * C::kThreadsPerRow;
    if (active && vector < vectors) {
      load_vector<typename C::In, C::kVec>(input, row_offset + vector * C::kVec,
                                           x + item * C::kVec);
    } else {
#pragma unroll
      for (int e = 0; e < C::kVec; ++e) x[item * C::kVec + e] = 0.0f;
    }
  }
}

template <class C>
__device__ __forceinline__ void store_row(void* output, long long row_offset, long long vectors,
                                          int lane, const float* y) {
#pragma unroll
  for (int item = 0; item < C::kItems; ++item) {
    const long long vector = lane + static_cast<long long>(item) * C::kThreadsPerRow;
    if (vector < vectors) {
      store_vector<typename C::Out, C::kVec>(output, row_offset + vector * C::kVec,
                                             y + item * C::kVec);
    }
  }
}

// y = round(x * inverse) (then * scale), the common path.
template <class C>
__device__ __forceinline__ void scale_common(const float* x, float inverse, float scale, float* y) {
#pragma unroll
  for (int i = 0; i < C::kValues; ++i) {
    y[i] = common_output<typename C::Out, C::kScaled>(x[i], inverse, scale);
  }
}

// The rare path's inverse norm, from the f64 sum of the group's row; every thread of the group
// must call it.
template <class C>
__device__ __forceinline__ double rare_row_inverse(const float (&x)[C::kValues], float eps,
                                                   double* scratch) {
  return rare_inverse_norm<C::kClamp>(group_sum<C::kThreadsPerRow>(sum_of_squares_f64(x), scratch),
                                      eps);
}

template <class C>
__device__ __forceinline__ void scale_rare(const float* x, double inverse, float scale, float* y) {
#pragma unroll
  for (int i = 0; i < C::kValues; ++i) {
    y[i] = rare_output<typename C::Out, C::kScaled>(x[i], inverse, scale);
  }
}

// The offsets of a thread's row in the row group that starts at `first_row` (zero past the last
// row).
template <class C>
__device__ __forceinline__ RowOffsets group_offsets(const L2NormArgs& args, long long first_row) {
  const long long row = first_row + threadIdx.x / C::kThreadsPerRow;
  return row < args.rows ? row_offsets(args, row) : RowOffsets{0, 0};
}

// Normalizes the rows of `args` that fall to `block` of `blocks` blocks (block b takes row groups
// b, b + blocks, ...). Every thread of the block must call it with the same arguments, in a block
// of C::kBlockThreads threads; `scratch_f32` and `scratch_f64` hold C::kScratch values each.
// The body waits for the previous kernel in the stream (dependent_launch.cuh) before its first
// memory access, after its first row's offsets are known: in a chain of dependent launches the
// index arithmetic (the outer dims' divisions of a strided view) runs while the previous kernel
// finishes, and the load is the first thing that follows the wait.
template <class C>
__device__ __forceinline__ void l2_norm_rows_body(const L2NormArgs& args, long long block,
                                                  long long blocks, float* scratch_f32,
                                                  double* scratch_f64) {
  const int lane = static_cast<int>(threadIdx.x % C::kThreadsPerRow);
  const long long vectors = args.dim / C::kVec;
  long long first_row = block * C::kRowsPerBlock;
  if (first_row >= args.rows) return;
  RowOffsets offsets = group_offsets<C>(args, first_row);
  wait_for_previous_kernel();
  // As early as possible: the next kernel's launch then overlaps this whole kernel.
  allow_next_kernel_launch();
  // Every thread runs the same number of iterations: reductions need the whole warp or block.
  // A later group's offsets are computed where the previous group ends, so no more values stay
  // live across an iteration than the group's own.
  for (;;) {
    // Recomputed rather than carried over with the offsets: fewer values live across the loop.
    const long long row = first_row + threadIdx.x / C::kThreadsPerRow;
    const bool active = row < args.rows;

    float x[C::kValues];
    load_row<C>(args.input, offsets.input, vectors, lane, active, x);

    const float sum = group_sum<C::kThreadsPerRow>(sum_of_squares(x), scratch_f32);
    const float inverse = common_inverse_norm<C::kClamp>(sum, args.eps);
    const bool rare = active && needs_rare_path(sum);
    float y[C::kValues];
    if constexpr (C::kStoreFirst) {
      // The common result is stored before the rare-path vote, so the vote and its branch are
      // off the dependent chain; a rare row is then stored again, from x still in registers, with
      // its f64 scale. The same thread writes both, so the second wins, and nothing can observe
      // the first before the kernel ends. Keeping x and y live together costs registers, hence
      // only here.
      scale_common<C>(x, inverse, args.scale, y);
      if (active) store_row<C>(args.output, offsets.output, vectors, lane, y);
      // Lane 0's rstd follows the same rule: a rare row's second store wins.
      if (active && lane == 0) store_rstd(args, row, inverse);
      if (group_any<C::kThreadsPerRow>(rare)) {
        const double rare_inverse = rare_row_inverse<C>(x, args.eps, scratch_f64);
        if (rare) {
          scale_rare<C>(x, rare_inverse, args.scale, y);
          store_row<C>(args.output, offsets.output, vectors, lane, y);
          if (lane == 0) store_rstd(args, row, __double2float_rn(rare_inverse));
        }
      }
    } else {
      double rare_inverse = 0.0;
      if (group_any<C::kThreadsPerRow>(rare)) {
        rare_inverse = rare_row_inverse<C>(x, args.eps, scratch_f64);
      }
      // One branch per row, not a choice per element: the common path never touches f64, which
      // keeps the dependent chain short.
      if (rare) {
        scale_rare<C>(x, rare_inverse, args.scale, y);
      } else {
        scale_common<C>(x, inverse, args.scale, y);
      }
      if (active) store_row<C>(args.output, offsets.output, vectors, lane, y);
      if (active && lane == 0) {
        store_rstd(args, row, rare ? __double2float_rn(rare_inverse) : inverse);
      }
    }
    first_row += blocks * C::kRowsPerBlock;
    if (first_row >= args.rows) return;
    offsets = group_offsets<C>(args, first_row);
  }
}

}  // namespace l2norm_kernels

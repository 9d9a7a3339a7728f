// The per-row arithmetic of docs/DESIGN.md "Semantics", shared by every l2_norm kernel: the fixed
// pairwise sum of a thread's squares, the common f32 path, the rare f64 path, and the two
// separately rounded multiplies of the scaled variant. The eps mode, the scaled flag and the
// output element type are template parameters (no define is read here), so kernels of several
// configurations may share a translation unit.
#pragma once

#include "element.cuh"
#include "l2_norm_args.cuh"

namespace l2norm_kernels {

// Pairwise (tree) sum of N values in index order; N is a compile-time constant, so the array stays
// in registers.
template <int N, typename T>
__device__ __forceinline__ T pairwise_sum(T (&values)[N]) {
#pragma unroll
  for (int stride = 1; stride < N; stride *= 2) {
#pragma unroll
    for (int i = 0; i + stride < N; i += 2 * stride) values[i] += values[i + stride];
  }
  return values[0];
}

template <int N>
__device__ __forceinline__ float sum_of_squares(const float (&x)[N]) {
  float squares[N];
#pragma unroll
  for (int i = 0; i < N; ++i) squares[i] = __fmul_rn(x[i], x[i]);
  return pairwise_sum(squares);
}

// f64 squares of f32 values never overflow or underflow. Summed eight at a time: for a power of
// two N the pairwise tree of N values is the tree over its aligned subtrees of eight, the same
// bits, with a quarter of the registers live (the rare path must not raise a kernel's count).
template <int N>
__device__ __forceinline__ double sum_of_squares_f64(const float (&x)[N]) {
  constexpr int kChunk = N < 8 ? N : 8;
  static_assert((N & (N - 1)) == 0, "the chunked tree needs a power-of-two count");
  double chunk_sums[N / kChunk];
#pragma unroll
  for (int chunk = 0; chunk < N / kChunk; ++chunk) {
    double squares[kChunk];
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      const double widened = static_cast<double>(x[chunk * kChunk + i]);
      squares[i] = __dmul_rn(widened, widened);
    }
    chunk_sums[chunk] = pairwise_sum(squares);
  }
  return pairwise_sum(chunk_sums);
}

// The f32 sum may have overflowed, met a NaN/Inf, or lost its squares to underflow.
__device__ __forceinline__ bool needs_rare_path(float sum) {
  return !(sum >= 0x1p-100f && sum <= 3.40282346638528859812e+38f);
}

// The correctly rounded reciprocal is 1 / x correctly rounded, with a shorter instruction
// sequence than the division. Clamp: eps mode clamp, else add.
template <bool Clamp>
__device__ __forceinline__ float common_inverse_norm(float sum, float eps) {
  if constexpr (Clamp) {
    return __frcp_rn(fmaxf(__fsqrt_rn(sum), eps));
  } else {
    return __frcp_rn(__fsqrt_rn(__fadd_rn(sum, eps)));
  }
}

// Rare rows include those holding a NaN, whose sum is NaN: clamp mode keeps it (fmax would
// drop it and scale the row's other values by 1 / eps), so the whole row comes out NaN in both
// modes.
template <bool Clamp>
__device__ __forceinline__ double rare_inverse_norm(double sum, float eps) {
  const double eps_d = static_cast<double>(eps);
  if constexpr (Clamp) {
    const double norm = __dsqrt_rn(sum);
    return __drcp_rn(norm < eps_d ? eps_d : norm);
  } else {
    return __drcp_rn(__dsqrt_rn(__dadd_rn(sum, eps_d)));
  }
}

// A rare row's value scaled by its f64 inverse norm, rounded once to f32.
__device__ __forceinline__ float rare_scaled(float x, double inverse) {
  return __double2float_rn(__dmul_rn(static_cast<double>(x), inverse));
}

// How one row is scaled: by the f32 inverse norm, or (rare rows) by the f64 one.
struct RowScale {
  bool rare;
  float inverse;
  double inverse_f64;
};

// The value to store, before the final rounding to the output element type Out: y, or (Scaled)
// round_Out(y) * scale with its own rounding, so the stored round_Out(round_Out(y) * scale) is
// bit-identical to normalizing into Out and then a separate scale pass over the stored output.
template <class Out, bool Scaled>
__device__ __forceinline__ float output_value(float y, float scale) {
  if constexpr (Scaled) {
    return __fmul_rn(round_to<Out>(y), scale);
  } else {
    (void)scale;
    return y;
  }
}

// The stored value of x in a common row (f32 inverse norm) and in a rare row (f64 inverse norm).
template <class Out, bool Scaled>
__device__ __forceinline__ float common_output(float x, float inverse, float scale) {
  return output_value<Out, Scaled>(__fmul_rn(x, inverse), scale);
}

template <class Out, bool Scaled>
__device__ __forceinline__ float rare_output(float x, double inverse, float scale) {
  return output_value<Out, Scaled>(rare_scaled(x, inverse), scale);
}

// Stores a row's rstd when the call asks for it (rstd not null); the caller lets one thread of the
// row call it. A null test per row, so calls with and without rstd share every kernel variant.
__device__ __forceinline__ void store_rstd(const L2NormArgs& args, long long row, float rstd) {
  if (args.rstd != nullptr) args.rstd[row * args.rstd_stride] = rstd;
}

__device__ __forceinline__ void store_rstd(const L2NormArgs& args, long long row,
                                           const RowScale& row_scale) {
  store_rstd(args, row,
             row_scale.rare ? __double2float_rn(row_scale.inverse_f64) : row_scale.inverse);
}

struct RowOffsets {
  long long input;
  long long output;
};

// n / outer_sizes[i], with the host's multiplier and shift (src/cuda/outer_divisor.hpp), for the
// arguments of any kernel (L2NormArgs, L2NormBackwardArgs).
template <typename Args>
__device__ __forceinline__ unsigned long long divide_by_outer_size(const Args& args, int i,
                                                                   unsigned long long n) {
  const int shift = args.outer_shifts[i];
  if (shift == 0) return n;
  const unsigned long long high = __umul64hi(args.outer_multipliers[i], n);
  return (high + ((n - high) >> 1)) >> (shift - 1);
}

// One step of splitting a row index over the outer dims, innermost first: for a row whose index
// over dims 0 .. i is `rest` (i >= 1), its index along dim i and its index over dims 0 .. i - 1.
struct OuterStep {
  unsigned long long rest;
  long long index;
};

template <typename Args>
__device__ __forceinline__ OuterStep outer_step(const Args& args, int i, unsigned long long rest) {
  const unsigned long long quotient = divide_by_outer_size(args, i, rest);
  const auto index = static_cast<long long>(
      rest - quotient * static_cast<unsigned long long>(args.outer_sizes[i]));
  return {quotient, index};
}

// Divisions only for views whose leading dims could not be merged into one, and none for dim 0:
// what is left of the row index after the inner dims is below its size.
__device__ __forceinline__ RowOffsets row_offsets(const L2NormArgs& args, long long row) {
  if (args.outer_rank == 1) {
    return {row * args.input_strides[0], row * args.output_strides[0]};
  }
  RowOffsets offsets{0, 0};
  auto rest = static_cast<unsigned long long>(row);
  // A compile-time trip count keeps the parameter arrays out of local memory.
#pragma unroll
  for (int i = L2NORM_MAX_OUTER_RANK - 1; i >= 1; --i) {
    if (i < args.outer_rank) {
      const OuterStep step = outer_step(args, i, rest);
      const long long index = step.index;
      rest = step.rest;
      offsets.input += index * args.input_strides[i];
      offsets.output += index * args.output_strides[i];
    }
  }
  offsets.input += static_cast<long long>(rest) * args.input_strides[0];
  offsets.output += static_cast<long long>(rest) * args.output_strides[0];
  return offsets;
}

}  // namespace l2norm_kernels

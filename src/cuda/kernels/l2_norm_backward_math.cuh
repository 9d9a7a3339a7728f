// The per-row arithmetic of l2_norm_backward (docs/DESIGN.md "Backward"), shared by its kernels:
// the row's factor (the forward's inverse norm, given or recomputed with row_math.cuh's own
// functions), the gradient of one element, typed loads of the three tensors and the rows' offsets.
//
// Defines: L2NORM_DY_DTYPE, L2NORM_DTYPE (y, or x from the input), L2NORM_DX_DTYPE (dtype codes of
// l2_norm_policy.cuh), L2NORM_VEC (elements per vector access of every tensor), L2NORM_EPS_CLAMP,
// L2NORM_SCALED, L2NORM_FROM_INPUT.
#pragma once

#include "element.cuh"
#include "l2_norm_backward_args.cuh"
#include "l2_norm_backward_policy.cuh"
#include "row_math.cuh"

namespace l2norm_kernels {

constexpr int kBackwardVec = L2NORM_VEC;
constexpr bool kClamp = L2NORM_EPS_CLAMP != 0;

// How a row's dx is formed from t = dy - dot * y (t = dy where the clamp passed no gradient to the
// norm): dx = scale * (r * t), or for a rare row recomputed from the input (float)(t * r_f64) in
// f64, the forward's own rare factor.
struct GradientFactor {
  float r;
  double r_f64;
  bool rare;
  bool clamped;
};

// Clamp mode: the row's norm was clamped to eps when its inverse norm is at least 1 / eps (the
// correctly rounded reciprocal; +Inf for eps == 0, which no finite factor reaches).
__device__ __forceinline__ bool clamped_norm(double inverse_norm, float eps) {
#if L2NORM_EPS_CLAMP
  return inverse_norm >= static_cast<double>(__frcp_rn(eps));
#else
  (void)inverse_norm;
  (void)eps;
  return false;
#endif
}

__device__ __forceinline__ GradientFactor stored_factor(float rstd, float eps) {
  return {rstd, 0.0, false, clamped_norm(rstd, eps)};
}

// The forward's f32 inverse norm of a common row and its f64 one of a rare row (row_math.cuh).
__device__ __forceinline__ GradientFactor common_factor(float sum, float eps) {
  const float r = common_inverse_norm<kClamp>(sum, eps);
  return {r, 0.0, false, clamped_norm(r, eps)};
}

__device__ __forceinline__ GradientFactor rare_factor(double sum, float eps) {
  const double r = rare_inverse_norm<kClamp>(sum, eps);
  return {0.0f, r, true, clamped_norm(r, eps)};
}

__device__ __forceinline__ bool finite_f32(float value) {
  return fabsf(value) <= 3.40282346638528859812e+38f;
}

__device__ __forceinline__ bool finite_f64(double value) {
  return fabs(value) <= 1.7976931348623157e308;
}

// A row with a non-finite factor, or an unclamped row whose dot product is not finite (a NaN or
// Inf in dy or y, or an overflow), has no meaningful gradient: all of its dx is NaN.
__device__ __forceinline__ void poison_if_not_finite(GradientFactor& factor, float dot) {
  const bool finite = factor.rare ? finite_f64(factor.r_f64) : finite_f32(factor.r);
  if (!finite || (!factor.clamped && !finite_f32(dot))) {
    factor.r = __int_as_float(0x7fc00000);
    factor.r_f64 = __longlong_as_double(0x7ff8000000000000LL);
  }
}

// dx of one element before the rounding to dx's dtype; every operation rounded as written. Rare:
// the row's factor is the f64 one (rare rows exist only from the input). A kernel branches once
// per row on factor.rare and calls the matching instance, so the common path never touches f64.
template <bool Rare>
__device__ __forceinline__ float gradient(float dy, float y, float dot,
                                          const GradientFactor& factor, float scale) {
  const float t = factor.clamped ? dy : __fsub_rn(dy, __fmul_rn(dot, y));
  const float unscaled = Rare ? __double2float_rn(__dmul_rn(static_cast<double>(t), factor.r_f64))
                              : __fmul_rn(factor.r, t);
#if L2NORM_SCALED
  return __fmul_rn(unscaled, scale);
#else
  (void)scale;
  return unscaled;
#endif
}

// y of one element as the forward computes it before rounding (from the input).
__device__ __forceinline__ float recomputed_y(float x, const GradientFactor& factor) {
  return factor.rare ? rare_scaled(x, factor.r_f64) : __fmul_rn(x, factor.r);
}

// N products summed pairwise in index order.
template <int N>
__device__ __forceinline__ float dot_product(const float (&a)[N], const float (&b)[N]) {
  float products[N];
#pragma unroll
  for (int i = 0; i < N; ++i) products[i] = __fmul_rn(a[i], b[i]);
  return pairwise_sum(products);
}

// One vector access of each tensor, at element `offset` of its row (element.cuh).
__device__ __forceinline__ void load_dy(const void* base, long long offset, float* out) {
  load_vector<Element<L2NORM_DY_DTYPE>, kBackwardVec>(base, offset, out);
}
__device__ __forceinline__ void load_y(const void* base, long long offset, float* out) {
  load_vector<Element<L2NORM_DTYPE>, kBackwardVec>(base, offset, out);
}
__device__ __forceinline__ void store_dx(void* base, long long offset, const float* in) {
  store_vector<Element<L2NORM_DX_DTYPE>, kBackwardVec>(base, offset, in);
}

struct BackwardRowOffsets {
  long long dy;
  long long y;
  long long dx;
};

// Divisions only for views whose leading dims could not be merged into one (outer_step,
// row_math.cuh).
__device__ __forceinline__ BackwardRowOffsets backward_row_offsets(const L2NormBackwardArgs& args,
                                                                   long long row) {
  if (args.outer_rank == 1) {
    return {row * args.strides[0][0], row * args.strides[1][0], row * args.strides[2][0]};
  }
  BackwardRowOffsets offsets{0, 0, 0};
  auto rest = static_cast<unsigned long long>(row);
#pragma unroll
  for (int i = L2NORM_BACKWARD_MAX_OUTER_RANK - 1; i >= 1; --i) {
    if (i < args.outer_rank) {
      const OuterStep step = outer_step(args, i, rest);
      const long long index = step.index;
      rest = step.rest;
      offsets.dy += index * args.strides[0][i];
      offsets.y += index * args.strides[1][i];
      offsets.dx += index * args.strides[2][i];
    }
  }
  const auto outer = static_cast<long long>(rest);
  offsets.dy += outer * args.strides[0][0];
  offsets.y += outer * args.strides[1][0];
  offsets.dx += outer * args.strides[2][0];
  return offsets;
}

}  // namespace l2norm_kernels

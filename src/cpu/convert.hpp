// Whole-buffer conversions through the CPU kernels' chunk code (cpu/chunk.hpp), in the same
// instruction-set versions as the kernels. Tests hold them to the scalar functions of
// l2norm/dtype.hpp (widening f16 quiets signaling NaNs where the version converts with F16C or
// AVX-512). Source and destination are `count` elements of `dtype` / f32.
#pragma once

#include <cstddef>

#include "l2norm/dtype.hpp"

namespace l2norm::detail::cpu {

void widen_to_f32(DType dtype, const void* source, float* destination, std::size_t count);
void narrow_from_f32(DType dtype, const float* source, void* destination, std::size_t count);
// The kernels' common-path rounding, for sources known to hold no NaN (it skips that case).
void narrow_non_nan_from_f32(DType dtype, const float* source, void* destination,
                             std::size_t count);

}  // namespace l2norm::detail::cpu

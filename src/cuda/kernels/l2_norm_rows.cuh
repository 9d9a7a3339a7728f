// l2_norm_rows: rows of up to L2NORM_THREADS_PER_ROW * L2NORM_ITEMS vectors, one group of threads
// per row (rows_body.cuh), for one configuration given by defines.
//
// Defines: L2NORM_DTYPE (input), L2NORM_OUT_DTYPE (output; dtype codes of l2_norm_policy.cuh),
// L2NORM_VEC_BYTES (input bytes per vector), L2NORM_THREADS_PER_ROW (power of two), L2NORM_ITEMS
// (vectors per thread), L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED, L2NORM_MIN_BLOCKS
// (blocks per multiprocessor the launch bounds ask for; 0: none).
#include "rows_body.cuh"

namespace l2norm_kernels {
typedef RowsConfig<Element<L2NORM_DTYPE>, Element<L2NORM_OUT_DTYPE>, L2NORM_VEC_BYTES,
                   L2NORM_THREADS_PER_ROW, L2NORM_ITEMS, L2NORM_BLOCK_THREADS,
                   L2NORM_EPS_CLAMP != 0, L2NORM_SCALED != 0>
    RowsKernelConfig;
}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS, L2NORM_MIN_BLOCKS)
    l2_norm_rows(const L2NormArgs args) {
  using namespace l2norm_kernels;
  typedef RowsKernelConfig C;
  __shared__ float scratch_f32[C::kScratch];
  __shared__ double scratch_f64[C::kScratch];
  l2_norm_rows_body<C>(args, blockIdx.x, gridDim.x, scratch_f32, scratch_f64);
}

// l2_norm_pair: two l2_norm targets in one launch, each with the rows-kernel body and
// configuration its own l2_norm call would run (rows_body.cuh): blocks [0, first_blocks) take the
// first target's row groups, the others the second's. Both bodies share the block size
// L2NORM_BLOCK_THREADS; a body's row groups per block follow from it, its arithmetic does not.
//
// Defines: L2NORM_BLOCK_THREADS, and for HALF in FIRST and SECOND the rows kernel's defines
// renamed L2NORM_HALF_*: L2NORM_HALF_DTYPE, L2NORM_HALF_OUT_DTYPE, L2NORM_HALF_VEC_BYTES,
// L2NORM_HALF_THREADS_PER_ROW, L2NORM_HALF_ITEMS, L2NORM_HALF_EPS_CLAMP, L2NORM_HALF_SCALED.
#include "rows_body.cuh"

namespace l2norm_kernels {
typedef RowsConfig<Element<L2NORM_FIRST_DTYPE>, Element<L2NORM_FIRST_OUT_DTYPE>,
                   L2NORM_FIRST_VEC_BYTES, L2NORM_FIRST_THREADS_PER_ROW, L2NORM_FIRST_ITEMS,
                   L2NORM_BLOCK_THREADS, L2NORM_FIRST_EPS_CLAMP != 0, L2NORM_FIRST_SCALED != 0>
    PairFirstConfig;
typedef RowsConfig<Element<L2NORM_SECOND_DTYPE>, Element<L2NORM_SECOND_OUT_DTYPE>,
                   L2NORM_SECOND_VEC_BYTES, L2NORM_SECOND_THREADS_PER_ROW, L2NORM_SECOND_ITEMS,
                   L2NORM_BLOCK_THREADS, L2NORM_SECOND_EPS_CLAMP != 0, L2NORM_SECOND_SCALED != 0>
    PairSecondConfig;
// Both bodies need the same scratch: group_sum's per-warp totals of one block.
static_assert(PairFirstConfig::kScratch == PairSecondConfig::kScratch, "one block size");
}  // namespace l2norm_kernels

extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS)
    l2_norm_pair(const L2NormArgs first, const L2NormArgs second, const long long first_blocks) {
  using namespace l2norm_kernels;
  __shared__ float scratch_f32[PairFirstConfig::kScratch];
  __shared__ double scratch_f64[PairFirstConfig::kScratch];
  // The branch is uniform over the block: every thread of a block runs one body.
  if (static_cast<long long>(blockIdx.x) < first_blocks) {
    l2_norm_rows_body<PairFirstConfig>(first, blockIdx.x, first_blocks, scratch_f32, scratch_f64);
  } else {
    l2_norm_rows_body<PairSecondConfig>(second, blockIdx.x - first_blocks, gridDim.x - first_blocks,
                                        scratch_f32, scratch_f64);
  }
}

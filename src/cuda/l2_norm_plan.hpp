// The l2_norm planner: a pure function from a validated call and a device's capabilities to the
// kernel variant and its launch shape. No CUDA calls, so it is tested without a GPU
// (tests/cuda/l2_norm_plan_test.cpp) on written-out device descriptions.
//
// Kernels: rows of up to max_threads_per_row * rows_values_per_thread elements run in the rows
// kernel (one group of threads per row, in registers). Longer rows run staged (one block per row,
// the row in shared memory) when one block holds the row and the batch has a row for every
// multiprocessor, else split over co-resident blocks: on chip (each block keeps its segment in
// registers and shared memory: one read of memory) when the row fits the co-resident blocks, else
// streamed (the scaling pass reads the row again, mostly from L2). A row's sum order depends on
// dim and the vector width alone (staged and on-chip rows share the tiles.cuh order), so the row
// count may choose between layouts without changing a bit.
//
// The output may have another dtype than the input. A vector is vector_bytes of the input; the
// output moves the same elements in its own type. Kernel kind, layout and sum order follow the
// input dtype, dim and vector width alone, so a row of a mixed-dtype call is summed exactly as the
// same row of the call with the input's dtype on both sides and the same vector width; only the
// final rounding differs. (The width itself is the widest that both views' alignment allows: see
// vector_bytes in ops/views.hpp.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/device_caps.hpp"
#include "cuda/kernels/l2_norm_args.cuh"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "l2norm/registry.hpp"
#include "ops/l2_norm_call.hpp"

namespace l2norm::detail::cuda {

enum class KernelKind : std::uint8_t { rows, staged, split_on_chip, split_streamed };

// One compiled l2_norm kernel: everything its spec depends on, and nothing else. Its bytes are its
// identity in the kernel registry (no padding).
struct L2NormVariant {
  KernelKind kind;
  DType dtype;  // the input's
  DType output_dtype;
  bool clamp;   // EpsMode::clamp
  bool scaled;  // the second, separately rounded multiply
  // Split on chip, rows of at most the policy's warp_row_sum_tiles tiles: every warp sums the
  // row's tile sums itself, with no block reduction (kernels/l2_norm_split.cuh, warp_row_sum).
  bool row_sum_in_warps;
  // Input bytes per vector. 16: the aligned variants; 8, 4, 2: the unaligned ones.
  std::int16_t vector_bytes;
  std::int32_t threads_per_row;  // staged and split: the whole block
  std::int32_t items;            // vectors per thread (staged and split: per tile)
  std::int32_t block_threads;
  // The launch attribute set on the kernel when it is loaded (0: the default).
  std::int32_t max_dynamic_shared_bytes;
  // Rows kernel: the blocks per multiprocessor its launch bounds ask for (0: none;
  // plan_math::set_rows_min_blocks).
  std::int32_t min_blocks;

  EpsMode eps_mode() const { return clamp ? EpsMode::clamp : EpsMode::add; }
  int vector_elements() const { return vector_bytes / static_cast<int>(dtype_size(dtype)); }
  // Staged and split: the bytes of one tile of the input (kernels/tiles.cuh).
  std::size_t tile_bytes() const;
  KernelSpec spec() const;
  // e.g. "l2_norm_rows<bf16,v16,8x2,add>"; with another output dtype
  // "l2_norm_rows<bf16->f32,v16,8x2,add>".
  std::string name() const;
  // The same tile layout, dtypes, vector width and options in another long-row kernel.
  L2NormVariant with_kind(KernelKind other) const;

  friend bool operator==(const L2NormVariant&, const L2NormVariant&) = default;
};
static_assert(std::has_unique_object_representations_v<L2NormVariant>);

// The split kernel's grid: rows cut into blocks_per_row segments of tiles_per_block tiles,
// rows_per_wave rows at once, in `waves` waves (L2NormSplitArgs).
struct L2NormSplitShape {
  std::int64_t blocks_per_row = 0;
  std::int64_t tiles_per_block = 0;
  std::int64_t rows_per_wave = 0;
  std::int64_t waves = 0;
  bool early_lines = false;
};

struct L2NormPlan {
  L2NormVariant variant;
  std::int64_t grid = 0;
  std::int32_t block = 0;
  std::size_t dynamic_shared_bytes = 0;
  bool cooperative = false;   // the split kernels: all blocks co-resident
  bool programmatic = false;  // may overlap the previous kernel's tail
  L2NormSplitShape split;     // split kernels only
};

// The plan of `call` on a device with `caps`.
L2NormPlan plan_l2_norm(const L2NormCall& call, const DeviceCaps& caps);

// The variants prewarm_l2_norm loads on a device with `caps`: every one a call of these dtypes,
// dim and options may pick there, whatever its pointers, strides and row count.
std::vector<L2NormVariant> l2_norm_prewarm_variants(DType input_dtype, DType output_dtype,
                                                    std::int64_t dim, EpsMode eps_mode, bool scaled,
                                                    const DeviceCaps& caps);
inline std::vector<L2NormVariant> l2_norm_prewarm_variants(DType dtype, std::int64_t dim,
                                                           EpsMode eps_mode, bool scaled,
                                                           const DeviceCaps& caps) {
  return l2_norm_prewarm_variants(dtype, dtype, dim, eps_mode, scaled, caps);
}
// Every layout of these dtypes, dim and options for every vector width the dim allows, on any
// device (long dims: the staged and both split kernels); max_dynamic_shared_bytes and min_blocks
// are 0.
std::vector<L2NormVariant> l2_norm_variants_for(DType input_dtype, DType output_dtype,
                                                std::int64_t dim, EpsMode eps_mode, bool scaled);
inline std::vector<L2NormVariant> l2_norm_variants_for(DType dtype, std::int64_t dim,
                                                       EpsMode eps_mode, bool scaled) {
  return l2_norm_variants_for(dtype, dtype, dim, eps_mode, scaled);
}
// The variants the compile-everything test builds. Equal dtypes: every variant a plan can ever
// name. Mixed dtypes (the six pairs): every pair at every vector width in every kernel kind and
// in both group reductions of the rows kernel (within a warp, across warps), the latency layout
// where the width has one, and on-chip split rows with and without the warps' row sum; clamp and
// scaled cycle over them. The code a mixed pair adds to a kernel is its loads and stores, which
// no layout value changes, so this covers it without compiling every layout six more times.
std::vector<L2NormVariant> all_l2_norm_variants();

// Tiles of a staged or split row of `dim` elements.
std::int64_t row_tiles(const L2NormVariant& variant, std::int64_t dim);
// The longest row the rows kernel takes.
std::int64_t max_rows_kernel_dim(const DeviceCaps& caps);
// The split kernel's workspace on a device: one slot per block that can be resident there, and
// per slot and wave parity one word for an f32 partial sum and two for an f64 one, then the tag
// counter word.
std::int64_t split_workspace_slots(const DeviceCaps& caps);
std::size_t split_workspace_bytes(const DeviceCaps& caps);

}  // namespace l2norm::detail::cuda

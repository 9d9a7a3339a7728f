// The l2_norm_backward planner: a pure function from a validated call and a device's capabilities
// to the kernel variant and its launch shape. No CUDA calls, so it is tested without a GPU
// (tests/cuda/l2_norm_backward_plan_test.cpp) on written-out device descriptions.
//
// Kernels: rows of up to max_threads_per_row * rows_values_per_thread elements run in the rows
// kernel (one group of threads per row, dy and y in registers, read once), in the throughput
// layout or, for batches too small to fill the device, in a latency layout of the same sum order.
// Longer rows run in the split kernel, cut into tiles and segments of tiles, one segment per
// block: on chip (each block keeps its segment of dy and y in registers and shared memory: one
// read of memory) when the row fits the co-resident blocks, else streamed (each pass reads the
// row again). With several blocks per row the launch is cooperative and the blocks exchange
// partial sums; with one (a batch that keeps every block busy with whole rows) the blocks run on
// their own. The kernel and its mode depend on dim and the device alone, and the sum order on
// those and the vector width, so a row's bits never depend on the batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/device_caps.hpp"
#include "cuda/kernels/l2_norm_backward_policy.cuh"
#include "l2norm/dtype.hpp"
#include "l2norm/ops.hpp"
#include "l2norm/registry.hpp"
#include "ops/l2_norm_backward_call.hpp"

namespace l2norm::detail::cuda {

enum class BackwardKernelKind : std::uint8_t { rows, split_on_chip, split_streamed };

// One compiled l2_norm_backward kernel: everything its spec depends on, and nothing else. Its
// bytes are its identity in the kernel registry (no padding).
struct L2NormBackwardVariant {
  BackwardKernelKind kind;
  DType dy_dtype;
  DType y_dtype;  // y, or x from the input
  DType dx_dtype;
  bool clamp;       // EpsMode::clamp
  bool scaled;      // scale != 1
  bool from_input;  // y and the factor recomputed from x
  // Elements per vector access of every tensor: 16 bytes of the widest dtype selects the aligned
  // variants, fewer the unaligned ones.
  std::uint8_t vector_elements;
  std::int32_t threads_per_row;  // split: the whole block
  std::int32_t items;            // vectors per thread (split: per tile)
  std::int32_t block_threads;
  // The launch attribute set on the kernel when it is loaded (0: the default).
  std::int32_t max_dynamic_shared_bytes;
  // Rows kernel: the blocks per multiprocessor its launch bounds ask for (0: none;
  // plan_math::set_rows_min_blocks).
  std::int32_t min_blocks;

  // Split: the bytes of one staged tile of dy and y (kernels/l2_norm_backward_split.cuh).
  std::size_t tile_bytes() const;
  KernelSpec spec() const;
  // e.g. "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v8,8x2,add>"
  std::string name() const;

  friend bool operator==(const L2NormBackwardVariant&, const L2NormBackwardVariant&) = default;
};
static_assert(std::has_unique_object_representations_v<L2NormBackwardVariant>);

// The split kernel's grid: rows cut into blocks_per_row segments of tiles_per_block tiles,
// rows_per_wave rows at once, in `waves` waves (L2NormBackwardSplitArgs).
struct L2NormBackwardSplitShape {
  std::int64_t blocks_per_row = 0;
  std::int64_t tiles_per_block = 0;
  std::int64_t rows_per_wave = 0;
  std::int64_t waves = 0;
};

struct L2NormBackwardPlan {
  L2NormBackwardVariant variant;
  std::int64_t grid = 0;
  std::int32_t block = 0;
  std::size_t dynamic_shared_bytes = 0;
  bool cooperative = false;        // the split kernel with several blocks per row: all co-resident
  bool programmatic = false;       // may overlap the previous kernel's tail
  L2NormBackwardSplitShape split;  // the split kernel only
};

// The plan of `call` on a device with `caps`.
L2NormBackwardPlan plan_l2_norm_backward(const L2NormBackwardCall& call, const DeviceCaps& caps);

// The variants prewarm_l2_norm_backward loads on a device with `caps`: every one a call with these
// dtypes, dim, options and form may pick there, whatever its pointers, strides and row count.
std::vector<L2NormBackwardVariant> l2_norm_backward_prewarm_variants(
    const L2NormBackwardPrewarm& request, const DeviceCaps& caps);

// The variants the compile-everything test builds: every (dy, y, dx) dtype triple at every vector
// width it allows in every kernel (rows, split on chip, split streamed), and every group size of
// the rows kernel and its latency layout; clamp, scaled and from_input cycle over them, so each
// value of each flag meets every kernel shape. max_dynamic_shared_bytes is 0.
std::vector<L2NormBackwardVariant> all_l2_norm_backward_variants();

// The longest row the rows kernel takes.
std::int64_t max_backward_rows_kernel_dim();
// Tiles of a split row of `dim` elements.
std::int64_t backward_row_tiles(const L2NormBackwardVariant& variant, std::int64_t dim);
// The split kernel's workspace on a device: one slot per block that can be resident there, and
// per slot and wave parity one word for the f32 sum of squares, two for the f64 one and one for
// the dot product, then the tag counter word.
std::int64_t backward_split_workspace_slots(const DeviceCaps& caps);
std::size_t backward_split_workspace_bytes(const DeviceCaps& caps);

}  // namespace l2norm::detail::cuda

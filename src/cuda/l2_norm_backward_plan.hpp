// The l2_norm_backward planner: a pure function from a validated call and a device's capabilities
// to the kernel variant and its launch shape. No CUDA calls, so it is tested without a GPU
// (tests/cuda/l2_norm_backward_plan_test.cpp) on written-out device descriptions.
//
// Kernels: rows of up to max_threads_per_row * rows_values_per_thread elements run in the rows
// kernel (one group of threads per row, dy and y in registers, read once), in the throughput
// layout or, for batches too small to fill the device, in a latency layout of the same sum order;
// longer rows in the looped kernel (one block per row, a pass over the row per sum and one for dx:
// the slow path). Which kernel runs depends on dim alone, and its sum order on dim and the vector
// width, so a row's bits never depend on the batch.
#pragma once

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

enum class BackwardKernelKind : std::uint8_t { rows, looped };

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
  std::int32_t threads_per_row;  // looped: the whole block
  std::int32_t items;            // vectors per thread (looped: per step)
  std::int32_t block_threads;

  KernelSpec spec() const;
  // e.g. "l2_norm_backward_rows<dy=bf16,y=bf16,dx=bf16,v8,8x2,add>"
  std::string name() const;

  friend bool operator==(const L2NormBackwardVariant&, const L2NormBackwardVariant&) = default;
};
static_assert(std::has_unique_object_representations_v<L2NormBackwardVariant>);

struct L2NormBackwardPlan {
  L2NormBackwardVariant variant;
  std::int64_t grid = 0;
  std::int32_t block = 0;
  bool programmatic = false;  // may overlap the previous kernel's tail
};

// The plan of `call` on a device with `caps`.
L2NormBackwardPlan plan_l2_norm_backward(const L2NormBackwardCall& call, const DeviceCaps& caps);

// The variants prewarm_l2_norm_backward loads on a device with `caps`: every one a call with these
// dtypes, dim, options and form may pick there, whatever its pointers, strides and row count.
std::vector<L2NormBackwardVariant> l2_norm_backward_prewarm_variants(
    const L2NormBackwardPrewarm& request, const DeviceCaps& caps);

// The variants the compile-everything test builds: every (dy, y, dx) dtype triple at every vector
// width it allows in both kernels, and every group size of the rows kernel; clamp, scaled and
// from_input cycle over them, so each value of each flag meets every kernel shape.
std::vector<L2NormBackwardVariant> all_l2_norm_backward_variants();

// The longest row the rows kernel takes.
std::int64_t max_backward_rows_kernel_dim();

}  // namespace l2norm::detail::cuda

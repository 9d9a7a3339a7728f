#include "cuda/l2_norm_backward_plan.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include "cuda/plan_math.hpp"

namespace l2norm::detail::cuda {

namespace {

using plan_math::ceil_div;
using plan_math::dtype_code;
using plan_math::latency_variant;
using plan_math::split_grid_limit;
using plan_math::workspace_slots;

// The values of the policy that fix a row's sum order must be the same in every family. (Which
// split mode a dim takes follows the device's capacity, so the order is fixed per device.)
constexpr L2NormBackwardPolicy kLayout = kL2NormBackwardPolicySm75;
static_assert(kL2NormBackwardPolicySm90.rows_values_per_thread == kLayout.rows_values_per_thread &&
                  kL2NormBackwardPolicySm90.max_threads_per_row == kLayout.max_threads_per_row &&
                  kL2NormBackwardPolicySm90.tile_values_per_thread ==
                      kLayout.tile_values_per_thread &&
                  kL2NormBackwardPolicySm90.tile_block_threads == kLayout.tile_block_threads,
              "every policy family sums a row of a given dim in the same order");

constexpr std::int64_t kMaxRowsKernelDim =
    std::int64_t{kLayout.max_threads_per_row} * kLayout.rows_values_per_thread;
constexpr int kTriples = 27;
constexpr std::array<DType, 3> kDTypes{DType::f32, DType::f16, DType::bf16};

// The most elements one vector access may move: 16 bytes of the widest of the three dtypes.
int max_vector_elements(DType dy, DType y, DType dx) {
  const std::size_t widest = std::max({dtype_size(dy), dtype_size(y), dtype_size(dx)});
  return static_cast<int>(16 / widest);
}

// The throughput layout of a dim: the rows kernel, or for longer rows the split kernel's tile
// shape (as split_on_chip, which split_variant settles for a device).
L2NormBackwardVariant layout(DType dy, DType y, DType dx, std::int64_t dim, int vector_elements,
                             EpsMode eps_mode, bool scaled, bool from_input) {
  L2NormBackwardVariant variant{};
  variant.dy_dtype = dy;
  variant.y_dtype = y;
  variant.dx_dtype = dx;
  variant.clamp = eps_mode == EpsMode::clamp;
  variant.scaled = scaled;
  variant.from_input = from_input;
  variant.vector_elements = static_cast<std::uint8_t>(vector_elements);
  if (dim <= kMaxRowsKernelDim) {
    variant.kind = BackwardKernelKind::rows;
    plan_math::set_rows_layout(variant, dim, vector_elements, kLayout);
  } else {
    variant.kind = BackwardKernelKind::split_on_chip;
    plan_math::set_tile_layout(variant, vector_elements, kLayout);
  }
  return variant;
}

// Tiles one on-chip split block holds: one in registers, the rest in the shared memory its static
// arrays leave free.
std::int64_t tiles_on_chip(const L2NormBackwardVariant& split, const DeviceCaps& caps,
                           const L2NormBackwardPolicy& policy) {
  return plan_math::tiles_on_chip(split.tile_bytes(), caps, policy);
}

// The split kernel for a row of `dim` on this device: on chip when its tiles fit the co-resident
// blocks (and their partial sums the workspace), else streamed. Depends on dim and the device
// only, so a row's mode, and with it its sum order, never depends on the batch.
L2NormBackwardVariant split_variant(const L2NormBackwardVariant& base, std::int64_t dim,
                                    const DeviceCaps& caps, const L2NormBackwardPolicy& policy) {
  L2NormBackwardVariant variant = base;
  const std::int64_t tiles = backward_row_tiles(base, dim);
  const std::int64_t per_block = tiles_on_chip(base, caps, policy);
  if (plan_math::split_fits_on_chip(tiles, per_block, caps, policy)) {
    variant.kind = BackwardKernelKind::split_on_chip;
    variant.max_dynamic_shared_bytes =
        static_cast<std::int32_t>(static_cast<std::size_t>(per_block - 1) * base.tile_bytes());
  } else {
    variant.kind = BackwardKernelKind::split_streamed;
    variant.max_dynamic_shared_bytes = 0;
  }
  return variant;
}

// The split kernel's grid for `call` (kernels/l2_norm_backward_split.cuh).
void plan_split(const L2NormBackwardCall& call, const DeviceCaps& caps,
                const L2NormBackwardPolicy& policy, L2NormBackwardPlan& plan) {
  const L2NormBackwardVariant& variant = plan.variant;
  const std::int64_t tiles = backward_row_tiles(variant, call.dim);
  const std::int64_t grid_limit = split_grid_limit(caps, policy);
  const bool on_chip = variant.kind == BackwardKernelKind::split_on_chip;
  const auto [blocks_per_row, tiles_per_block] = plan_math::split_segments(
      call.rows, tiles, on_chip ? tiles_on_chip(variant, caps, policy) : 0, grid_limit,
      variant.block_threads);
  std::int64_t rows_per_wave = 0;
  if (blocks_per_row == 1) {
    // Whole rows per block: no exchange, so the blocks need not be co-resident, and a grid of
    // one block per row lets the device schedule them as blocks finish.
    rows_per_wave = std::min<std::int64_t>(call.rows, policy.max_grid_blocks);
  } else {
    const std::int64_t partials_per_row = on_chip ? tiles : blocks_per_row;
    rows_per_wave = std::min({std::max<std::int64_t>(grid_limit / blocks_per_row, 1), call.rows,
                              workspace_slots(caps) / partials_per_row});
    plan.cooperative = true;
  }
  plan.split.blocks_per_row = blocks_per_row;
  plan.split.tiles_per_block = tiles_per_block;
  plan.split.rows_per_wave = rows_per_wave;
  plan.split.waves = ceil_div(call.rows, rows_per_wave);
  plan.grid = rows_per_wave * blocks_per_row;
  plan.block = variant.block_threads;
  plan.dynamic_shared_bytes =
      on_chip ? static_cast<std::size_t>(tiles_per_block - 1) * variant.tile_bytes() : 0;
}

}  // namespace

std::size_t L2NormBackwardVariant::tile_bytes() const {
  return static_cast<std::size_t>(block_threads) * static_cast<std::size_t>(items) *
         static_cast<std::size_t>(vector_elements) * (dtype_size(dy_dtype) + dtype_size(y_dtype));
}

KernelSpec L2NormBackwardVariant::spec() const {
  KernelSpec spec;
  const char* entry =
      kind == BackwardKernelKind::rows ? "l2_norm_backward_rows" : "l2_norm_backward_split";
  spec.source = std::string(entry) + ".cuh";
  spec.entry = entry;
  spec.defines = {"L2NORM_DY_DTYPE=" + std::to_string(dtype_code(dy_dtype)),
                  "L2NORM_DTYPE=" + std::to_string(dtype_code(y_dtype)),
                  "L2NORM_DX_DTYPE=" + std::to_string(dtype_code(dx_dtype)),
                  "L2NORM_VEC=" + std::to_string(vector_elements),
                  "L2NORM_ITEMS=" + std::to_string(items),
                  "L2NORM_BLOCK_THREADS=" + std::to_string(block_threads),
                  std::string("L2NORM_EPS_CLAMP=") + (clamp ? "1" : "0"),
                  std::string("L2NORM_SCALED=") + (scaled ? "1" : "0"),
                  std::string("L2NORM_FROM_INPUT=") + (from_input ? "1" : "0")};
  if (kind == BackwardKernelKind::rows) {
    spec.defines.push_back("L2NORM_THREADS_PER_ROW=" + std::to_string(threads_per_row));
    spec.defines.push_back("L2NORM_MIN_BLOCKS=" + std::to_string(min_blocks));
    // Launch bounds that make ptxas spill cost more than the occupancy they buy.
    if (min_blocks > 0) spec.spill_fallback_define = "L2NORM_MIN_BLOCKS=0";
  } else {
    spec.defines.push_back(std::string("L2NORM_SPLIT_ON_CHIP=") +
                           (kind == BackwardKernelKind::split_on_chip ? "1" : "0"));
  }
  spec.max_dynamic_shared_bytes = static_cast<std::size_t>(max_dynamic_shared_bytes);
  return spec;
}

std::string L2NormBackwardVariant::name() const {
  std::string text;
  text.reserve(96);
  text += kind == BackwardKernelKind::rows            ? "l2_norm_backward_rows<dy="
          : kind == BackwardKernelKind::split_on_chip ? "l2_norm_backward_split_on_chip<dy="
                                                      : "l2_norm_backward_split_streamed<dy=";
  text += dtype_name(dy_dtype);
  text += from_input ? ",x=" : ",y=";
  text += dtype_name(y_dtype);
  text += ",dx=";
  text += dtype_name(dx_dtype);
  plan_math::append_layout_name(text, vector_elements, threads_per_row, items, clamp, scaled);
  if (from_input) text += ",from_input";
  text += '>';
  return text;
}

std::int64_t max_backward_rows_kernel_dim() {
  return kMaxRowsKernelDim;
}

std::int64_t backward_row_tiles(const L2NormBackwardVariant& variant, std::int64_t dim) {
  const std::int64_t tile_vectors = std::int64_t{variant.block_threads} * variant.items;
  return ceil_div(dim / variant.vector_elements, tile_vectors);
}

std::int64_t backward_split_workspace_slots(const DeviceCaps& caps) {
  return workspace_slots(caps);
}

std::size_t backward_split_workspace_bytes(const DeviceCaps& caps) {
  return (static_cast<std::size_t>(workspace_slots(caps)) * 2 * (1 + 2 + 1) + 1) *
         sizeof(unsigned long long);
}

L2NormBackwardPlan plan_l2_norm_backward(const L2NormBackwardCall& call, const DeviceCaps& caps) {
  const L2NormBackwardPolicy policy = l2_norm_backward_policy(caps.arch);
  L2NormBackwardPlan plan{};
  plan.variant = layout(call.dy_dtype, call.y_dtype, call.dtype, call.dim, call.vector_elements,
                        call.eps_mode, call.scaled, call.from_input);
  if (plan.variant.kind != BackwardKernelKind::rows) {
    plan.variant = split_variant(plan.variant, call.dim, caps, policy);
    plan_split(call, caps, policy, plan);
    return plan;
  }
  // The latency layout while its threads fill at most the policy's share of the device's thread
  // slots. The sum of squares from the input (f32 and f64) and the dot product have its shape
  // alike. In practice: rows of up to 256 elements whose three tensors are 16-bit (8-element
  // vectors), the heads of decode.
  const auto latency = latency_variant(plan.variant, policy);
  if (latency && plan_math::latency_fits(call.rows, *latency, caps, policy)) {
    plan.variant = *latency;
  }
  plan_math::set_rows_min_blocks(plan.variant, caps, policy);
  plan.programmatic = policy.programmatic_launch;
  // A row group per block. The kernel loops over rows, so the grid may stop short of one block
  // per group.
  plan.grid = plan_math::rows_grid(call.rows, plan.variant, policy);
  plan.block = plan.variant.block_threads;
  return plan;
}

std::vector<L2NormBackwardVariant> l2_norm_backward_prewarm_variants(
    const L2NormBackwardPrewarm& request, const DeviceCaps& caps) {
  const L2NormBackwardPolicy policy = l2_norm_backward_policy(caps.arch);
  std::vector<L2NormBackwardVariant> variants;
  const int widest = max_vector_elements(request.dy_dtype, request.y_dtype, request.dx_dtype);
  for (int elements = widest; elements >= 1; elements /= 2) {
    if (request.dim % elements != 0) continue;
    const L2NormBackwardVariant base =
        layout(request.dy_dtype, request.y_dtype, request.dx_dtype, request.dim, elements,
               request.options.eps_mode, request.options.scale != 1.0f, request.from_input);
    if (base.kind != BackwardKernelKind::rows) {
      variants.push_back(split_variant(base, request.dim, caps, policy));
      continue;
    }
    variants.push_back(base);
    plan_math::set_rows_min_blocks(variants.back(), caps, policy);
    if (auto latency = latency_variant(base, policy)) {
      plan_math::set_rows_min_blocks(*latency, caps, policy);
      variants.push_back(*latency);
    }
  }
  return variants;
}

std::vector<L2NormBackwardVariant> all_l2_norm_backward_variants() {
  std::vector<L2NormBackwardVariant> variants;
  // Every kernel of a layout: the rows kernel and its latency layout, or both split modes.
  const auto push = [&](const L2NormBackwardVariant& base) {
    variants.push_back(base);
    if (base.kind == BackwardKernelKind::rows) {
      if (const auto latency = latency_variant(base, kLayout)) variants.push_back(*latency);
    } else {
      L2NormBackwardVariant streamed = base;
      streamed.kind = BackwardKernelKind::split_streamed;
      variants.push_back(streamed);
    }
  };
  // The flags cycle per kernel, so that each kernel meets every combination.
  const auto add = [&](DType dy, DType y, DType dx, std::int64_t dim, int elements, int& cycle) {
    const int flags = cycle++;
    push(layout(dy, y, dx, dim, elements, (flags & 2) != 0 ? EpsMode::clamp : EpsMode::add,
                (flags & 4) != 0, (flags & 1) != 0));
  };
  int rows_cycle = 0;
  int split_cycle = 0;
  for (int triple = 0; triple < kTriples; ++triple) {
    const DType dy = kDTypes[std::size_t(triple / 9)];
    const DType y = kDTypes[std::size_t(triple / 3 % 3)];
    const DType dx = kDTypes[std::size_t(triple % 3)];
    for (int elements = max_vector_elements(dy, y, dx); elements >= 1; elements /= 2) {
      add(dy, y, dx, kLayout.rows_values_per_thread * 4, elements, rows_cycle);
      add(dy, y, dx, kMaxRowsKernelDim * 2, elements, split_cycle);
    }
  }
  // Every group size of the rows kernel (and of its latency layout) at every vector width, each
  // size in both forms.
  struct Width {
    DType dy, y, dx;
    int elements;
  };
  constexpr Width kWidths[] = {{DType::bf16, DType::bf16, DType::bf16, 8},
                               {DType::f32, DType::bf16, DType::f16, 4},
                               {DType::f16, DType::f16, DType::f16, 2},
                               {DType::f32, DType::f32, DType::f32, 1}};
  int level = 0;
  for (std::int64_t threads = 1; threads <= kLayout.max_threads_per_row; threads *= 2, ++level) {
    const std::int64_t dim = threads * kLayout.rows_values_per_thread;
    for (int w = 0; w < 4; ++w) {
      const Width& width = kWidths[w];
      // The form alternates over the widths of a size and over the sizes of a width.
      push(layout(width.dy, width.y, width.dx, dim, width.elements,
                  w / 2 == 0 ? EpsMode::add : EpsMode::clamp, w / 2 != 0, (w + level) % 2 != 0));
    }
  }
  return variants;
}

}  // namespace l2norm::detail::cuda

#include "cuda/l2_norm_plan.hpp"

#include <algorithm>
#include <optional>

#include "cuda/plan_math.hpp"

namespace l2norm::detail::cuda {

namespace {

using plan_math::ceil_div;
using plan_math::dtype_code;
using plan_math::latency_variant;
using plan_math::split_grid_limit;
using plan_math::workspace_slots;

constexpr int kVectorWidths[] = {16, 8, 4, 2};

// The layout's tile shape (rows_values_per_thread, tile_values_per_thread, tile_block_threads)
// fixes a row's sum order, so it must be the same for every architecture: a family may tune
// launches, never the order.
constexpr L2NormPolicy kLayout = kL2NormPolicySm75;
static_assert(kL2NormPolicySm90.rows_values_per_thread == kLayout.rows_values_per_thread &&
                  kL2NormPolicySm90.tile_values_per_thread == kLayout.tile_values_per_thread &&
                  kL2NormPolicySm90.tile_block_threads == kLayout.tile_block_threads &&
                  kL2NormPolicySm90.max_threads_per_row == kLayout.max_threads_per_row &&
                  kL2NormPolicySm90.warp_row_sum_tiles == kLayout.warp_row_sum_tiles,
              "every policy family sums a row of a given dim in the same order");

constexpr std::int64_t kMaxRowsKernelDim =
    std::int64_t{kLayout.max_threads_per_row} * kLayout.rows_values_per_thread;

// The layout for throughput: rows_values_per_thread values per thread (longer rows: tiles of the
// staged and split kernels).
L2NormVariant throughput_variant(DType dtype, DType output_dtype, std::int64_t dim,
                                 int vector_bytes, EpsMode eps_mode, bool scaled) {
  L2NormVariant variant{};
  variant.dtype = dtype;
  variant.output_dtype = output_dtype;
  variant.vector_bytes = static_cast<std::int16_t>(vector_bytes);
  variant.clamp = eps_mode == EpsMode::clamp;
  variant.scaled = scaled;
  const int elements = variant.vector_elements();
  if (dim <= kMaxRowsKernelDim) {
    variant.kind = KernelKind::rows;
    plan_math::set_rows_layout(variant, dim, elements, kLayout);
  } else {
    variant.kind = KernelKind::split_on_chip;
    plan_math::set_tile_layout(variant, elements, kLayout);
    variant.row_sum_in_warps = row_tiles(variant, dim) <= kLayout.warp_row_sum_tiles;
  }
  return variant;
}

std::vector<L2NormVariant> layouts(DType dtype, DType output_dtype, std::int64_t dim,
                                   int vector_bytes, EpsMode eps_mode, bool scaled,
                                   const L2NormPolicy& policy) {
  std::vector<L2NormVariant> variants{
      throughput_variant(dtype, output_dtype, dim, vector_bytes, eps_mode, scaled)};
  if (const auto latency = latency_variant(variants.front(), policy)) {
    variants.push_back(*latency);
  }
  if (variants.front().kind == KernelKind::split_on_chip) {
    variants.push_back(variants.front().with_kind(KernelKind::staged));
    variants.push_back(variants.front().with_kind(KernelKind::split_streamed));
  }
  return variants;
}

// Tiles one on-chip split block holds: one in registers, the rest in the shared memory its static
// arrays leave free.
std::int64_t tiles_on_chip(const L2NormVariant& on_chip, const DeviceCaps& caps,
                           const L2NormPolicy& policy) {
  return plan_math::tiles_on_chip(on_chip.tile_bytes(), caps, policy);
}

// Whether one staged block holds a row of `dim` in its shared memory.
bool staged_row_fits(const L2NormVariant& variant, std::int64_t dim, const DeviceCaps& caps,
                     const L2NormPolicy& policy) {
  const std::int64_t tiles = row_tiles(variant, dim);
  return tiles <= policy.max_tiles_per_block &&
         static_cast<std::size_t>(tiles) * variant.tile_bytes() +
                 static_cast<std::size_t>(policy.staged_static_shared_bytes) <=
             caps.shared_memory_per_block_optin;
}

// The split kernel for a row of `dim` on this device: on chip when its tiles fit the co-resident
// blocks, else streamed. Depends on dim and the device only, so a row's mode, and with it its sum
// order, never depends on the batch.
L2NormVariant split_variant(const L2NormVariant& throughput, std::int64_t dim,
                            const DeviceCaps& caps, const L2NormPolicy& policy) {
  const std::int64_t tiles = row_tiles(throughput, dim);
  const std::int64_t per_block = tiles_on_chip(throughput, caps, policy);
  if (plan_math::split_fits_on_chip(tiles, per_block, caps, policy)) {
    L2NormVariant on_chip = throughput.with_kind(KernelKind::split_on_chip);
    on_chip.max_dynamic_shared_bytes =
        static_cast<std::int32_t>(static_cast<std::size_t>(per_block - 1) * on_chip.tile_bytes());
    return on_chip;
  }
  return throughput.with_kind(KernelKind::split_streamed);
}

L2NormVariant staged_variant(const L2NormVariant& throughput, const DeviceCaps& caps,
                             const L2NormPolicy& policy) {
  L2NormVariant staged = throughput.with_kind(KernelKind::staged);
  staged.max_dynamic_shared_bytes =
      static_cast<std::int32_t>(caps.shared_memory_per_block_optin -
                                static_cast<std::size_t>(policy.staged_static_shared_bytes));
  return staged;
}

// The split kernel's grid for `call` (kernels/l2_norm_split.cuh).
void plan_split(const L2NormCall& call, const DeviceCaps& caps, const L2NormPolicy& policy,
                L2NormPlan& plan) {
  const L2NormVariant& variant = plan.variant;
  const std::int64_t tiles = row_tiles(variant, call.dim);
  const std::int64_t capacity = workspace_slots(caps);
  const std::int64_t grid_limit = split_grid_limit(caps, policy);
  const bool on_chip = variant.kind == KernelKind::split_on_chip;
  const auto [blocks_per_row, tiles_per_block] = plan_math::split_segments(
      call.rows, tiles, on_chip ? tiles_on_chip(variant, caps, policy) : 0, grid_limit,
      variant.block_threads);
  const std::int64_t partials_per_row = on_chip ? tiles : blocks_per_row;
  const std::int64_t rows_per_wave =
      std::min({std::max<std::int64_t>(grid_limit / blocks_per_row, 1), call.rows,
                capacity / partials_per_row});

  plan.split.blocks_per_row = blocks_per_row;
  plan.split.tiles_per_block = tiles_per_block;
  plan.split.rows_per_wave = rows_per_wave;
  plan.split.waves = ceil_div(call.rows, rows_per_wave);
  // An input and output larger than L2 together cannot both be resident from an earlier use: the
  // output's lines are new to L2 and evict others (l2_norm_split.cuh, write_early_lines).
  const auto moved_bytes = static_cast<std::uint64_t>(call.rows * call.dim) *
                           (dtype_size(call.dtype) + dtype_size(call.output_dtype));
  plan.split.early_lines = on_chip && moved_bytes > caps.l2_cache_bytes;
  plan.grid = rows_per_wave * blocks_per_row;
  plan.block = variant.block_threads;
  plan.dynamic_shared_bytes =
      on_chip ? static_cast<std::size_t>(tiles_per_block - 1) * variant.tile_bytes() : 0;
  plan.cooperative = true;
}

}  // namespace

std::size_t L2NormVariant::tile_bytes() const {
  return static_cast<std::size_t>(block_threads) * static_cast<std::size_t>(items) *
         static_cast<std::size_t>(vector_bytes);
}

KernelSpec L2NormVariant::spec() const {
  KernelSpec spec;
  const bool split = kind == KernelKind::split_on_chip || kind == KernelKind::split_streamed;
  const char* entry = split                        ? "l2_norm_split"
                      : kind == KernelKind::staged ? "l2_norm_staged"
                                                   : "l2_norm_rows";
  spec.source = std::string(entry) + ".cuh";
  spec.entry = entry;
  spec.defines = {"L2NORM_DTYPE=" + std::to_string(dtype_code(dtype)),
                  "L2NORM_OUT_DTYPE=" + std::to_string(dtype_code(output_dtype)),
                  "L2NORM_VEC_BYTES=" + std::to_string(vector_bytes),
                  "L2NORM_ITEMS=" + std::to_string(items),
                  "L2NORM_BLOCK_THREADS=" + std::to_string(block_threads),
                  std::string("L2NORM_EPS_CLAMP=") + (clamp ? "1" : "0"),
                  std::string("L2NORM_SCALED=") + (scaled ? "1" : "0")};
  if (split) {
    spec.defines.push_back(std::string("L2NORM_SPLIT_ON_CHIP=") +
                           (kind == KernelKind::split_on_chip ? "1" : "0"));
    spec.defines.push_back(std::string("L2NORM_ROW_SUM_IN_WARPS=") +
                           (row_sum_in_warps ? "1" : "0"));
  } else if (kind == KernelKind::rows) {
    spec.defines.push_back("L2NORM_THREADS_PER_ROW=" + std::to_string(threads_per_row));
    spec.defines.push_back("L2NORM_MIN_BLOCKS=" + std::to_string(min_blocks));
    // Launch bounds that make ptxas spill cost more than the occupancy they buy.
    if (min_blocks > 0) spec.spill_fallback_define = "L2NORM_MIN_BLOCKS=0";
  }
  spec.max_dynamic_shared_bytes = static_cast<std::size_t>(max_dynamic_shared_bytes);
  return spec;
}

L2NormVariant L2NormVariant::with_kind(KernelKind other) const {
  L2NormVariant variant = *this;
  variant.kind = other;
  variant.row_sum_in_warps = row_sum_in_warps && other == KernelKind::split_on_chip;
  variant.max_dynamic_shared_bytes = 0;
  variant.min_blocks = 0;
  return variant;
}

// Built on every dispatch (the encoder's record), so with one allocation: the numbers' own
// strings are short enough to need none.
std::string L2NormVariant::name() const {
  std::string text;
  text.reserve(64);
  text += kind == KernelKind::rows            ? "l2_norm_rows<"
          : kind == KernelKind::staged        ? "l2_norm_staged<"
          : kind == KernelKind::split_on_chip ? "l2_norm_split_on_chip<"
                                              : "l2_norm_split_streamed<";
  text += dtype_name(dtype);
  if (output_dtype != dtype) {
    text += "->";
    text += dtype_name(output_dtype);
  }
  plan_math::append_layout_name(text, vector_bytes, threads_per_row, items, clamp, scaled);
  if (row_sum_in_warps) text += ",warp_sum";
  text += '>';
  return text;
}

std::int64_t row_tiles(const L2NormVariant& variant, std::int64_t dim) {
  const std::int64_t tile_vectors = std::int64_t{variant.block_threads} * variant.items;
  return ceil_div(dim / variant.vector_elements(), tile_vectors);
}

std::int64_t max_rows_kernel_dim(const DeviceCaps&) {
  return kMaxRowsKernelDim;
}

std::int64_t split_workspace_slots(const DeviceCaps& caps) {
  return workspace_slots(caps);
}

std::size_t split_workspace_bytes(const DeviceCaps& caps) {
  return (static_cast<std::size_t>(workspace_slots(caps)) * 2 * 3 + 1) * sizeof(unsigned long long);
}

L2NormPlan plan_l2_norm(const L2NormCall& call, const DeviceCaps& caps) {
  const L2NormPolicy policy = l2_norm_policy(caps.arch);
  const L2NormVariant throughput = throughput_variant(
      call.dtype, call.output_dtype, call.dim, call.vector_bytes, call.eps_mode, call.scaled);
  L2NormPlan plan{};
  if (throughput.kind == KernelKind::split_on_chip) {
    // Staged once every multiprocessor gets a row: each multiprocessor's stores then run under
    // other rows' loads, with no barrier between blocks. With fewer rows the split kernel spreads
    // a row over more multiprocessors, whose stores into L2 would otherwise be the limit.
    if (call.rows >= caps.multiprocessors && staged_row_fits(throughput, call.dim, caps, policy)) {
      plan.variant = staged_variant(throughput, caps, policy);
    } else {
      plan.variant = split_variant(throughput, call.dim, caps, policy);
      plan_split(call, caps, policy, plan);
      return plan;
    }
  } else {
    plan.variant = throughput;
    // The latency layout while its threads fill at most the policy's share of the device's
    // thread slots. In practice: 16-bit rows of up to 256 elements, the heads of decode.
    const auto latency = latency_variant(throughput, policy);
    if (latency && plan_math::latency_fits(call.rows, *latency, caps, policy)) {
      plan.variant = *latency;
    }
    plan_math::set_rows_min_blocks(plan.variant, caps, policy);
    plan.programmatic = policy.programmatic_launch;
  }
  // A row group per block (staged: one row). The kernels loop over rows, so the grid may stop
  // short of one block per group.
  const L2NormVariant& variant = plan.variant;
  plan.grid = plan_math::rows_grid(call.rows, variant, policy);
  plan.block = variant.block_threads;
  plan.dynamic_shared_bytes =
      variant.kind == KernelKind::staged
          ? static_cast<std::size_t>(row_tiles(variant, call.dim)) * variant.tile_bytes()
          : 0;
  return plan;
}

std::vector<L2NormVariant> l2_norm_prewarm_variants(DType dtype, DType output_dtype,
                                                    std::int64_t dim, EpsMode eps_mode, bool scaled,
                                                    const DeviceCaps& caps) {
  const L2NormPolicy policy = l2_norm_policy(caps.arch);
  std::vector<L2NormVariant> variants;
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
  // A width the row allows in the input allows its element count in the output too (the output's
  // row is that many elements in its own type), so the input decides which widths can occur.
  for (const int width : kVectorWidths) {
    if (width < element_bytes || (dim * element_bytes) % width != 0) continue;
    const L2NormVariant throughput =
        throughput_variant(dtype, output_dtype, dim, width, eps_mode, scaled);
    if (throughput.kind == KernelKind::rows) {
      L2NormVariant rows = throughput;
      plan_math::set_rows_min_blocks(rows, caps, policy);
      variants.push_back(rows);
      if (auto latency = latency_variant(throughput, policy)) {
        plan_math::set_rows_min_blocks(*latency, caps, policy);
        variants.push_back(*latency);
      }
    } else {
      if (staged_row_fits(throughput, dim, caps, policy)) {
        variants.push_back(staged_variant(throughput, caps, policy));
      }
      variants.push_back(split_variant(throughput, dim, caps, policy));
    }
  }
  return variants;
}

std::vector<L2NormVariant> l2_norm_variants_for(DType dtype, DType output_dtype, std::int64_t dim,
                                                EpsMode eps_mode, bool scaled) {
  std::vector<L2NormVariant> variants;
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
  for (const int width : kVectorWidths) {
    if (width < element_bytes || (dim * element_bytes) % width != 0) continue;
    for (const L2NormVariant& variant :
         layouts(dtype, output_dtype, dim, width, eps_mode, scaled, kL2NormPolicySm75)) {
      variants.push_back(variant);
    }
  }
  return variants;
}

std::vector<L2NormVariant> all_l2_norm_variants() {
  std::vector<L2NormVariant> variants;
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    const auto element_bytes = static_cast<int>(dtype_size(dtype));
    for (const int width : kVectorWidths) {
      if (width < element_bytes) continue;
      const int elements = width / element_bytes;
      for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
        for (const bool scaled : {false, true}) {
          // One representative dim per threads-per-row class, then one longer dim.
          std::vector<std::int64_t> dims;
          for (std::int64_t threads = 1; threads <= kLayout.max_threads_per_row; threads *= 2) {
            dims.push_back(
                std::max<std::int64_t>(elements, threads * kLayout.rows_values_per_thread));
          }
          dims.push_back(kMaxRowsKernelDim * 2);
          // A row one tile too long for the split kernel's warps to sum.
          dims.push_back(std::int64_t{kLayout.tile_block_threads} * kLayout.tile_values_per_thread *
                         (kLayout.warp_row_sum_tiles + 1));
          for (const std::int64_t dim : dims) {
            for (const L2NormVariant& variant :
                 layouts(dtype, dtype, dim, width, mode, scaled, kL2NormPolicySm75)) {
              variants.push_back(variant);
            }
          }
        }
      }
    }
  }
  // Mixed dtypes: per pair and width, a row group within a warp (8 threads; at 16-bit 16-byte
  // vectors also its latency layout) and one across warps (64 threads), and the long-row kernels:
  // staged, streamed, on chip with and without the warps' row sum. The flags cycle so that each
  // value of clamp and scaled meets every pair.
  int flags = 0;
  for (const DType input : {DType::f32, DType::f16, DType::bf16}) {
    for (const DType output : {DType::f32, DType::f16, DType::bf16}) {
      if (input == output) continue;
      const auto element_bytes = static_cast<int>(dtype_size(input));
      for (const int width : kVectorWidths) {
        if (width < element_bytes) continue;
        const std::int64_t dims[] = {
            std::int64_t{8} * kLayout.rows_values_per_thread,
            std::int64_t{64} * kLayout.rows_values_per_thread, kMaxRowsKernelDim * 2,
            std::int64_t{kLayout.tile_block_threads} * kLayout.tile_values_per_thread *
                (kLayout.warp_row_sum_tiles + 1)};
        for (const std::int64_t dim : dims) {
          const EpsMode mode = (flags & 1) != 0 ? EpsMode::clamp : EpsMode::add;
          const bool scaled = (flags & 2) != 0;
          ++flags;
          for (const L2NormVariant& variant :
               layouts(input, output, dim, width, mode, scaled, kL2NormPolicySm75)) {
            // The longest dim adds only its on-chip split kernel without the warps' row sum.
            if (dim == dims[3] && variant.kind != KernelKind::split_on_chip) continue;
            variants.push_back(variant);
          }
        }
      }
    }
  }
  return variants;
}

}  // namespace l2norm::detail::cuda

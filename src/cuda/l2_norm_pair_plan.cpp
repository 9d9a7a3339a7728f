#include "cuda/l2_norm_pair_plan.hpp"

#include <algorithm>
#include <string>
#include <string_view>

#include "cuda/kernels/l2_norm_policy.cuh"
#include "cuda/plan_math.hpp"

namespace l2norm::detail::cuda {
namespace {

// A rows variant with the pair's block size.
// A target's variant in the pair's block; the pair kernel's launch bounds ask for no blocks per
// multiprocessor, so neither half carries a count made for its own block.
L2NormVariant with_block(L2NormVariant variant, std::int32_t block_threads) {
  variant.block_threads = block_threads;
  variant.min_blocks = 0;
  return variant;
}

L2NormPairVariant pair_of(const L2NormVariant& first, const L2NormVariant& second) {
  const std::int32_t block = std::max(first.block_threads, second.block_threads);
  return {with_block(first, block), with_block(second, block)};
}

// The defines of a rows variant's spec, renamed for one half of the pair kernel:
// "L2NORM_ITEMS=2" becomes "L2NORM_FIRST_ITEMS=2".
void add_defines(const L2NormVariant& variant, std::string_view half, KernelSpec& spec) {
  constexpr std::string_view kPrefix = "L2NORM_";
  for (const std::string& define : variant.spec().defines) {
    if (define.starts_with("L2NORM_BLOCK_THREADS=") || define.starts_with("L2NORM_MIN_BLOCKS=")) {
      continue;
    }
    spec.defines.push_back(std::string(kPrefix) + std::string(half) + "_" +
                           define.substr(kPrefix.size()));
  }
}

std::int64_t blocks_for(std::int64_t rows, const L2NormVariant& variant, std::int64_t limit) {
  const std::int64_t rows_per_block = variant.block_threads / variant.threads_per_row;
  return std::min(plan_math::ceil_div(rows, rows_per_block), limit);
}

}  // namespace

KernelSpec L2NormPairVariant::spec() const {
  KernelSpec spec;
  spec.source = "l2_norm_pair.cuh";
  spec.entry = "l2_norm_pair";
  spec.defines = {"L2NORM_BLOCK_THREADS=" + std::to_string(first.block_threads)};
  add_defines(first, "FIRST", spec);
  add_defines(second, "SECOND", spec);
  return spec;
}

std::string L2NormPairVariant::name() const {
  return "l2_norm_pair<" + first.name() + "," + second.name() + ">";
}

L2NormPairPlan plan_l2_norm_pair(const L2NormPairCall& call, const DeviceCaps& caps) {
  L2NormPairPlan plan;
  plan.first = plan_l2_norm(call.first, caps);
  plan.second = plan_l2_norm(call.second, caps);
  if (plan.first.variant.kind != KernelKind::rows || plan.second.variant.kind != KernelKind::rows) {
    return plan;
  }
  const L2NormPolicy policy = l2_norm_policy(caps.arch);
  plan.one_launch = true;
  plan.variant = pair_of(plan.first.variant, plan.second.variant);
  const std::int64_t limit = policy.max_grid_blocks / 2;
  plan.first_blocks = blocks_for(call.first.rows, plan.variant.first, limit);
  plan.grid = plan.first_blocks + blocks_for(call.second.rows, plan.variant.second, limit);
  plan.block = plan.variant.first.block_threads;
  plan.programmatic = policy.programmatic_launch;
  return plan;
}

std::vector<L2NormPairVariant> l2_norm_pair_prewarm_variants(const L2NormKernelShape& first,
                                                             const L2NormKernelShape& second,
                                                             const DeviceCaps& caps) {
  const auto rows_variants = [&](const L2NormKernelShape& shape) {
    std::vector<L2NormVariant> variants;
    for (const L2NormVariant& variant :
         l2_norm_prewarm_variants(shape.input_dtype, shape.output_dtype, shape.dim,
                                  shape.options.eps_mode, shape.options.scale != 1.0f, caps)) {
      if (variant.kind == KernelKind::rows) variants.push_back(variant);
    }
    return variants;
  };
  std::vector<L2NormPairVariant> pairs;
  for (const L2NormVariant& a : rows_variants(first)) {
    for (const L2NormVariant& b : rows_variants(second)) {
      const L2NormPairVariant pair = pair_of(a, b);
      if (std::find(pairs.begin(), pairs.end(), pair) == pairs.end()) pairs.push_back(pair);
    }
  }
  return pairs;
}

}  // namespace l2norm::detail::cuda

// The l2_norm_pair planner: a pure function from a validated call and a device's capabilities to
// one launch of the pair kernel or two l2_norm launches. No CUDA calls, so it is tested without a
// GPU (tests/cuda/l2_norm_pair_plan_test.cpp).
//
// Each target is planned exactly as its own l2_norm call (plan_l2_norm). When both plans use the
// rows kernel, one launch of the pair kernel runs both: blocks [0, first_blocks) run the first
// target's rows-kernel body, the rest the second's, each with the variant its own plan chose, so
// each target's sum order and rounding are those of its l2_norm call. The block size is the
// larger of the two (a body with fewer threads per block runs more row groups per block, which
// leaves every row's arithmetic unchanged). Otherwise (a row too long for the rows kernel) the
// two l2_norm plans run as two launches.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/device_caps.hpp"
#include "cuda/l2_norm_plan.hpp"
#include "l2norm/registry.hpp"
#include "ops/l2_norm_pair_call.hpp"

namespace l2norm::detail::cuda {

// One compiled pair kernel: the two rows-kernel variants (with the shared block size). Its bytes
// are its identity in the kernel registry (no padding).
struct L2NormPairVariant {
  L2NormVariant first;
  L2NormVariant second;

  KernelSpec spec() const;
  // e.g. "l2_norm_pair<l2_norm_rows<bf16,v16,16x1,add,scaled>,l2_norm_rows<bf16,v16,16x1,add>>"
  std::string name() const;

  friend bool operator==(const L2NormPairVariant&, const L2NormPairVariant&) = default;
};
static_assert(std::has_unique_object_representations_v<L2NormPairVariant>);

struct L2NormPairPlan {
  bool one_launch = false;
  // One launch: the pair kernel, its grid (first_blocks for the first target, the rest for the
  // second) and block.
  L2NormPairVariant variant{};
  std::int64_t first_blocks = 0;
  std::int64_t grid = 0;
  std::int32_t block = 0;
  bool programmatic = false;
  // Two launches: each target's own l2_norm plan.
  L2NormPlan first{};
  L2NormPlan second{};
};

L2NormPairPlan plan_l2_norm_pair(const L2NormPairCall& call, const DeviceCaps& caps);

// The pair kernels prewarm_l2_norm_pair loads on a device with `caps`: every one a call of these
// shapes may pick there, whatever the pointers, strides and row counts.
std::vector<L2NormPairVariant> l2_norm_pair_prewarm_variants(const L2NormKernelShape& first,
                                                             const L2NormKernelShape& second,
                                                             const DeviceCaps& caps);

}  // namespace l2norm::detail::cuda

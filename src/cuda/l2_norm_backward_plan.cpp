#include "cuda/l2_norm_backward_plan.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include "cuda/kernels/l2_norm_policy.cuh"

namespace l2norm::detail::cuda {

namespace {

int dtype_code(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return L2NORM_DTYPE_F32;
    case DType::f16:
      return L2NORM_DTYPE_F16;
    case DType::bf16:
      return L2NORM_DTYPE_BF16;
  }
  return L2NORM_DTYPE_F32;
}

int next_power_of_two(std::int64_t value) {
  int power = 1;
  while (power < value) power *= 2;
  return power;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

// The values of the policy that fix a row's sum order must be the same in every family.
constexpr L2NormBackwardPolicy kLayout = kL2NormBackwardPolicySm75;
static_assert(kL2NormBackwardPolicySm90.rows_values_per_thread == kLayout.rows_values_per_thread &&
                  kL2NormBackwardPolicySm90.max_threads_per_row == kLayout.max_threads_per_row &&
                  kL2NormBackwardPolicySm90.looped_block_threads == kLayout.looped_block_threads &&
                  kL2NormBackwardPolicySm90.looped_values_per_thread ==
                      kLayout.looped_values_per_thread,
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
    variant.items = kLayout.rows_values_per_thread / vector_elements;
    variant.threads_per_row = next_power_of_two(ceil_div(dim, kLayout.rows_values_per_thread));
    variant.block_threads = std::max(variant.threads_per_row, kLayout.rows_min_block_threads);
  } else {
    variant.kind = BackwardKernelKind::looped;
    variant.items = kLayout.looped_values_per_thread / vector_elements;
    variant.threads_per_row = kLayout.looped_block_threads;
    variant.block_threads = kLayout.looped_block_threads;
  }
  return variant;
}

// The layout for batches too small to fill the device, where the dependent chain of one row is
// the time: one vector per thread and twice the threads per row. Only where it sums a row in the
// same order as the throughput layout: that one keeps two vectors per thread, so its in-thread
// step adds vectors `threads_per_row` apart, which is exactly the first butterfly step of the
// doubled group, and the doubled group still fits a warp (a pure butterfly). The sum of squares
// from the input (f32 and f64) and the dot product have that shape alike. In practice: rows of up
// to 256 elements whose three tensors are 16-bit (8-element vectors), the heads of decode.
std::optional<L2NormBackwardVariant> latency_variant(const L2NormBackwardVariant& throughput,
                                                     const L2NormBackwardPolicy& policy) {
  if (throughput.kind != BackwardKernelKind::rows || throughput.items != 2 ||
      throughput.threads_per_row * 2 > 32) {
    return std::nullopt;
  }
  L2NormBackwardVariant variant = throughput;
  variant.threads_per_row *= 2;
  variant.items = 1;
  variant.block_threads = policy.latency_block_threads;
  return variant;
}

}  // namespace

KernelSpec L2NormBackwardVariant::spec() const {
  KernelSpec spec;
  const char* entry =
      kind == BackwardKernelKind::rows ? "l2_norm_backward_rows" : "l2_norm_backward_looped";
  spec.source = std::string(entry) + ".cuh";
  spec.entry = entry;
  const int vector_bytes = vector_elements * static_cast<int>(dtype_size(y_dtype));
  spec.defines = {"L2NORM_DY_DTYPE=" + std::to_string(dtype_code(dy_dtype)),
                  "L2NORM_DTYPE=" + std::to_string(dtype_code(y_dtype)),
                  "L2NORM_DX_DTYPE=" + std::to_string(dtype_code(dx_dtype)),
                  "L2NORM_VEC=" + std::to_string(vector_elements),
                  "L2NORM_VEC_BYTES=" + std::to_string(vector_bytes),
                  "L2NORM_ITEMS=" + std::to_string(items),
                  "L2NORM_BLOCK_THREADS=" + std::to_string(block_threads),
                  std::string("L2NORM_EPS_CLAMP=") + (clamp ? "1" : "0"),
                  std::string("L2NORM_SCALED=") + (scaled ? "1" : "0"),
                  std::string("L2NORM_FROM_INPUT=") + (from_input ? "1" : "0")};
  if (kind == BackwardKernelKind::rows) {
    spec.defines.push_back("L2NORM_THREADS_PER_ROW=" + std::to_string(threads_per_row));
  }
  return spec;
}

std::string L2NormBackwardVariant::name() const {
  std::string text;
  text.reserve(80);
  text += kind == BackwardKernelKind::rows ? "l2_norm_backward_rows<dy="
                                           : "l2_norm_backward_looped<dy=";
  text += dtype_name(dy_dtype);
  text += from_input ? ",x=" : ",y=";
  text += dtype_name(y_dtype);
  text += ",dx=";
  text += dtype_name(dx_dtype);
  text += ",v";
  text += std::to_string(vector_elements);
  text += ',';
  text += std::to_string(threads_per_row);
  text += 'x';
  text += std::to_string(items);
  text += clamp ? ",clamp" : ",add";
  if (scaled) text += ",scaled";
  if (from_input) text += ",from_input";
  text += '>';
  return text;
}

std::int64_t max_backward_rows_kernel_dim() {
  return kMaxRowsKernelDim;
}

L2NormBackwardPlan plan_l2_norm_backward(const L2NormBackwardCall& call, const DeviceCaps& caps) {
  const L2NormBackwardPolicy policy = l2_norm_backward_policy(caps.arch);
  L2NormBackwardPlan plan{};
  plan.variant = layout(call.dy_dtype, call.y_dtype, call.dtype, call.dim, call.vector_elements,
                        call.eps_mode, call.scaled, call.from_input);
  if (plan.variant.kind == BackwardKernelKind::rows) {
    // The latency layout while its threads fill at most the policy's share of the device's
    // thread slots.
    const auto latency = latency_variant(plan.variant, policy);
    const std::int64_t thread_slots =
        std::int64_t{caps.multiprocessors} * caps.max_threads_per_multiprocessor;
    if (latency &&
        call.rows * latency->threads_per_row <= thread_slots / policy.latency_thread_share) {
      plan.variant = *latency;
    }
    plan.programmatic = policy.programmatic_launch;
  }
  const L2NormBackwardVariant& variant = plan.variant;
  // A row group per block (looped: one row). The kernels loop over rows, so the grid may stop
  // short of one block per group.
  const std::int64_t rows_per_block = variant.block_threads / variant.threads_per_row;
  plan.grid = std::min<std::int64_t>(ceil_div(call.rows, rows_per_block), policy.max_grid_blocks);
  plan.block = variant.block_threads;
  return plan;
}

std::vector<L2NormBackwardVariant> l2_norm_backward_prewarm_variants(
    const L2NormBackwardPrewarm& request, const DeviceCaps& caps) {
  const L2NormBackwardPolicy policy = l2_norm_backward_policy(caps.arch);
  std::vector<L2NormBackwardVariant> variants;
  const int widest = max_vector_elements(request.dy_dtype, request.y_dtype, request.dx_dtype);
  for (int elements = widest; elements >= 1; elements /= 2) {
    if (request.dim % elements != 0) continue;
    const L2NormBackwardVariant throughput =
        layout(request.dy_dtype, request.y_dtype, request.dx_dtype, request.dim, elements,
               request.options.eps_mode, request.options.scale != 1.0f, request.from_input);
    variants.push_back(throughput);
    if (const auto latency = latency_variant(throughput, policy)) variants.push_back(*latency);
  }
  return variants;
}

std::vector<L2NormBackwardVariant> all_l2_norm_backward_variants() {
  std::vector<L2NormBackwardVariant> variants;
  int next_flags = 0;
  // A layout and, where the dim has one, its latency layout.
  const auto push = [&](const L2NormBackwardVariant& throughput) {
    variants.push_back(throughput);
    if (const auto latency = latency_variant(throughput, kLayout)) variants.push_back(*latency);
  };
  const auto add = [&](DType dy, DType y, DType dx, std::int64_t dim, int elements) {
    const int flags = next_flags++;
    push(layout(dy, y, dx, dim, elements, (flags & 2) != 0 ? EpsMode::clamp : EpsMode::add,
                (flags & 4) != 0, (flags & 1) != 0));
  };
  for (int triple = 0; triple < kTriples; ++triple) {
    const DType dy = kDTypes[std::size_t(triple / 9)];
    const DType y = kDTypes[std::size_t(triple / 3 % 3)];
    const DType dx = kDTypes[std::size_t(triple % 3)];
    for (int elements = max_vector_elements(dy, y, dx); elements >= 1; elements /= 2) {
      add(dy, y, dx, kLayout.rows_values_per_thread * 4, elements);
      add(dy, y, dx, kMaxRowsKernelDim * 2, elements);
    }
  }
  // Every group size of the rows kernel (and of its latency layout), in both forms, aligned and
  // not.
  for (std::int64_t threads = 1; threads <= kLayout.max_threads_per_row; threads *= 2) {
    const std::int64_t dim = threads * kLayout.rows_values_per_thread;
    for (const bool from_input : {false, true}) {
      push(layout(DType::bf16, DType::bf16, DType::bf16, dim, 8, EpsMode::add, false, from_input));
      push(layout(DType::f32, DType::f32, DType::f32, dim, 1, EpsMode::clamp, true, from_input));
    }
  }
  return variants;
}

}  // namespace l2norm::detail::cuda

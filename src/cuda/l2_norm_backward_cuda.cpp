// The CUDA implementation of l2_norm_backward: plans the call (l2_norm_backward_plan.hpp), finds
// the kernel in the registry and launches it on the encoder's stream.
#include "ops/l2_norm_backward_call.hpp"

#include "cuda/encoder.hpp"
#include "cuda/kernels/l2_norm_backward_args.cuh"
#include "cuda/l2_norm_backward_plan.hpp"
#include "cuda/outer_divisor.hpp"
#include "cuda/runtime.hpp"
#include "l2norm/error.hpp"

namespace l2norm::detail::cuda {

namespace {

// Partial sums and the tag counter of the split kernel (kernels/l2_norm_backward_split.cuh),
// zeroed once per encoder; every dispatch leaves the counter's count of started blocks at zero.
const Workspace kSplitWorkspace("l2_norm_backward split", backward_split_workspace_bytes);

L2NormBackwardArgs make_args(const L2NormBackwardCall& call) {
  L2NormBackwardArgs args{};
  args.dy = call.dy;
  args.y = call.y;
  args.rstd = call.rstd;
  args.dx = call.dx;
  args.rstd_stride = call.rstd_stride;
  args.rows = call.rows;
  args.dim = call.dim;
  args.outer_rank = call.layout.outer_rank;
  for (int i = 0; i < L2NORM_BACKWARD_MAX_OUTER_RANK; ++i) {
    const auto index = static_cast<std::size_t>(i);
    args.outer_sizes[i] = call.layout.outer_sizes[index];
    // The kernels divide by the sizes of dims 1 .. outer_rank - 1 only.
    if (i >= 1 && i < args.outer_rank) {
      const OuterDivisor divisor = outer_divisor(static_cast<std::uint64_t>(args.outer_sizes[i]));
      args.outer_multipliers[i] = divisor.multiplier;
      args.outer_shifts[i] = divisor.shift;
    }
    for (int view = 0; view < L2NORM_BACKWARD_VIEWS; ++view) {
      args.strides[view][i] = call.layout.strides[static_cast<std::size_t>(view)][index];
    }
  }
  args.eps = call.eps;
  args.scale = call.scale;
  return args;
}

// The loaded kernel of `variant`; a miss during a CUDA-graph capture says what to do about it.
void* kernel_for(Encoder& encoder, const L2NormBackwardVariant& variant) {
  try {
    return encoder.kernel(variant);
  } catch (const Error& error) {
    if (error.code() != ErrorCode::unsupported) throw;
    throw Error(ErrorCode::unsupported,
                std::string(error.what()) +
                    " (call prewarm_l2_norm_backward(device, dy_dtype, y_dtype, dx_dtype, dim, "
                    "options, from_input) for every shape before capturing)");
  }
}

}  // namespace

std::string run(Backend, EncoderImpl& impl, const L2NormBackwardCall& call) {
  Encoder& encoder = encoder_of(impl);
  const L2NormBackwardPlan plan = plan_l2_norm_backward(call, encoder.caps());
  Launch launch;
  launch.kernel = kernel_for(encoder, plan.variant);
  launch.grid = static_cast<std::uint32_t>(plan.grid);
  launch.block = static_cast<std::uint32_t>(plan.block);
  launch.dynamic_shared_bytes = plan.dynamic_shared_bytes;
  launch.cooperative = plan.cooperative;
  launch.programmatic = plan.programmatic;
  L2NormBackwardArgs args = make_args(call);
  if (plan.variant.kind == BackwardKernelKind::rows) {
    void* parameters[] = {&args};
    encoder.launch(launch, parameters, "l2_norm_backward kernel launch");
    return plan.variant.name();
  }
  auto* const words = static_cast<unsigned long long*>(encoder.workspace(kSplitWorkspace));
  const auto slots = static_cast<std::size_t>(backward_split_workspace_slots(encoder.caps()));
  L2NormBackwardSplitArgs split{};
  split.blocks_per_row = plan.split.blocks_per_row;
  split.tiles_per_block = plan.split.tiles_per_block;
  split.rows_per_wave = plan.split.rows_per_wave;
  split.waves = plan.split.waves;
  // Per slot and wave parity: one word, two, one (backward_split_workspace_bytes).
  split.squares_f32 = words;
  split.squares_f64 = words + 2 * slots;
  split.dot_f32 = words + 2 * 3 * slots;
  split.tag_counter = words + 2 * 4 * slots;
  void* parameters[] = {&args, &split};
  encoder.launch(launch, parameters, "l2_norm_backward split kernel launch");
  return plan.variant.name();
}

void prewarm(Backend, int device_index, const L2NormBackwardPrewarm& request) {
  const DeviceCaps& caps = device_caps(device_index);
  const Device device = Device::cuda(device_index);
  Encoder::register_embedded_sources();
  for (const L2NormBackwardVariant& variant : l2_norm_backward_prewarm_variants(request, caps)) {
    KernelRegistry::global().kernel(device, variant);
  }
}

}  // namespace l2norm::detail::cuda

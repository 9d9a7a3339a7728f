// The CUDA implementation of l2_norm_backward: plans the call (l2_norm_backward_plan.hpp), finds
// the kernel in the registry and launches it on the encoder's stream.
#include "ops/l2_norm_backward_call.hpp"

#include "cuda/encoder.hpp"
#include "cuda/kernels/l2_norm_backward_args.cuh"
#include "cuda/l2_norm_backward_plan.hpp"
#include "cuda/outer_divisor.hpp"
#include "cuda/runtime.hpp"

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
  set_outer_sizes(args, call.layout);
  for (int i = 0; i < L2NORM_BACKWARD_MAX_OUTER_RANK; ++i) {
    const auto index = static_cast<std::size_t>(i);
    for (int view = 0; view < L2NORM_BACKWARD_VIEWS; ++view) {
      args.strides[view][i] = call.layout.strides[static_cast<std::size_t>(view)][index];
    }
  }
  args.eps = call.eps;
  args.scale = call.scale;
  return args;
}

}  // namespace

std::string run(Backend, EncoderImpl& impl, const L2NormBackwardCall& call) {
  Encoder& encoder = encoder_of(impl);
  const L2NormBackwardPlan plan = plan_l2_norm_backward(call, encoder.caps());
  const Launch launch =
      plan_launch(kernel_for(encoder, plan.variant,
                             "call prewarm_l2_norm_backward(device, dy_dtype, y_dtype, dx_dtype, "
                             "dim, options, from_input) for every shape before capturing"),
                  plan);
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
  load_kernels(device_index, l2_norm_backward_prewarm_variants(request, device_caps(device_index)));
}

}  // namespace l2norm::detail::cuda

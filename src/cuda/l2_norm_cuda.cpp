// The CUDA implementation of l2_norm: plans the call (l2_norm_plan.hpp), finds the kernel in the
// registry and launches it on the encoder's stream.
#include "ops/l2_norm_call.hpp"

#include "cuda/encoder.hpp"
#include "cuda/kernels/l2_norm_args.cuh"
#include "cuda/l2_norm_launch.hpp"
#include "cuda/l2_norm_plan.hpp"
#include "cuda/outer_divisor.hpp"
#include "cuda/runtime.hpp"

namespace l2norm::detail::cuda {

namespace {

// Partial sums and the tag counter of the split kernel (kernels/l2_norm_split.cuh), zeroed once
// per encoder; every dispatch leaves the counter's count of started blocks at zero.
const Workspace kSplitWorkspace("l2_norm split", split_workspace_bytes);

}  // namespace

L2NormArgs make_l2_norm_args(const L2NormCall& call) {
  L2NormArgs args{};
  args.input = call.input;
  args.output = call.output;
  args.rows = call.rows;
  args.dim = call.dim;
  set_outer_sizes(args, call.layout);
  for (int i = 0; i < kMaxOuterRank; ++i) {
    const auto index = static_cast<std::size_t>(i);
    args.input_strides[i] = call.layout.input_strides[index];
    args.output_strides[i] = call.layout.output_strides[index];
  }
  args.eps = call.eps;
  args.scale = call.scale;
  args.rstd = call.rstd;
  args.rstd_stride = call.rstd_stride;
  return args;
}

std::string enqueue_l2_norm(Encoder& encoder, const L2NormCall& call, const L2NormPlan& plan) {
  const Launch launch = plan_launch(
      kernel_for(encoder, plan.variant,
                 "call prewarm_l2_norm(device, input_dtype, output_dtype, dim, options) for every "
                 "shape before capturing"),
      plan);
  L2NormArgs args = make_l2_norm_args(call);
  if (plan.cooperative) {
    auto* const words = static_cast<unsigned long long*>(encoder.workspace(kSplitWorkspace));
    const auto slots = static_cast<std::size_t>(split_workspace_slots(encoder.caps()));
    L2NormSplitArgs split{};
    split.blocks_per_row = plan.split.blocks_per_row;
    split.tiles_per_block = plan.split.tiles_per_block;
    split.rows_per_wave = plan.split.rows_per_wave;
    split.waves = plan.split.waves;
    split.early_lines = plan.split.early_lines ? 1 : 0;
    split.partial_f32 = words;
    split.partial_f64 = words + 2 * slots;
    split.tag_counter = words + 2 * 3 * slots;
    void* parameters[] = {&args, &split};
    encoder.launch(launch, parameters, "l2_norm split kernel launch");
  } else {
    void* parameters[] = {&args};
    encoder.launch(launch, parameters, "l2_norm kernel launch");
  }
  return plan.variant.name();
}

std::string run(Backend, EncoderImpl& impl, const L2NormCall& call) {
  Encoder& encoder = encoder_of(impl);
  return enqueue_l2_norm(encoder, call, plan_l2_norm(call, encoder.caps()));
}

void prewarm(Backend, int device_index, const L2NormPrewarm& request) {
  load_kernels(device_index,
               l2_norm_prewarm_variants(request.dtype, request.output_dtype, request.dim,
                                        request.options.eps_mode, request.options.scale != 1.0f,
                                        device_caps(device_index)));
}

}  // namespace l2norm::detail::cuda

// The CUDA implementation of l2_norm: plans the call (l2_norm_plan.hpp), finds the kernel in the
// registry and launches it on the encoder's stream.
#include "ops/l2_norm_call.hpp"

#include "cuda/encoder.hpp"
#include "cuda/kernels/l2_norm_args.cuh"
#include "cuda/l2_norm_launch.hpp"
#include "cuda/l2_norm_plan.hpp"
#include "cuda/outer_divisor.hpp"
#include "cuda/runtime.hpp"
#include "l2norm/error.hpp"

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
  args.outer_rank = call.layout.outer_rank;
  for (int i = 0; i < kMaxOuterRank; ++i) {
    const auto index = static_cast<std::size_t>(i);
    args.outer_sizes[i] = call.layout.outer_sizes[index];
    // The kernels divide by the sizes of dims 1 .. outer_rank - 1 only.
    if (i >= 1 && i < args.outer_rank) {
      const OuterDivisor divisor = outer_divisor(static_cast<std::uint64_t>(args.outer_sizes[i]));
      args.outer_multipliers[i] = divisor.multiplier;
      args.outer_shifts[i] = divisor.shift;
    }
    args.input_strides[i] = call.layout.input_strides[index];
    args.output_strides[i] = call.layout.output_strides[index];
  }
  args.eps = call.eps;
  args.scale = call.scale;
  args.rstd = call.rstd;
  args.rstd_stride = call.rstd_stride;
  return args;
}

namespace {

// The loaded kernel of `variant`; a miss during a CUDA-graph capture says what to do about it.
void* kernel_for(Encoder& encoder, const L2NormVariant& variant) {
  try {
    return encoder.kernel(variant);
  } catch (const Error& error) {
    if (error.code() != ErrorCode::unsupported) throw;
    throw Error(ErrorCode::unsupported,
                std::string(error.what()) +
                    " (call prewarm_l2_norm(device, input_dtype, output_dtype, dim, options) "
                    "for every shape before capturing)");
  }
}

}  // namespace

std::string enqueue_l2_norm(Encoder& encoder, const L2NormCall& call, const L2NormPlan& plan) {
  Launch launch;
  launch.kernel = kernel_for(encoder, plan.variant);
  launch.grid = static_cast<std::uint32_t>(plan.grid);
  launch.block = static_cast<std::uint32_t>(plan.block);
  launch.dynamic_shared_bytes = plan.dynamic_shared_bytes;
  launch.cooperative = plan.cooperative;
  launch.programmatic = plan.programmatic;
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
  const DeviceCaps& caps = device_caps(device_index);
  const Device device = Device::cuda(device_index);
  Encoder::register_embedded_sources();
  for (const L2NormVariant& variant :
       l2_norm_prewarm_variants(request.dtype, request.output_dtype, request.dim,
                                request.options.eps_mode, request.options.scale != 1.0f, caps)) {
    KernelRegistry::global().kernel(device, variant);
  }
}

}  // namespace l2norm::detail::cuda

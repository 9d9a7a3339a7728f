// The CUDA implementation of l2_norm_pair: plans the call (l2_norm_pair_plan.hpp) and launches the
// pair kernel once, or each target's l2_norm kernel, on the encoder's stream.
#include "ops/l2_norm_pair_call.hpp"

#include "cuda/encoder.hpp"
#include "cuda/kernels/l2_norm_args.cuh"
#include "cuda/l2_norm_launch.hpp"
#include "cuda/l2_norm_pair_plan.hpp"
#include "cuda/runtime.hpp"

namespace l2norm::detail::cuda {

std::string run(Backend, EncoderImpl& impl, const L2NormPairCall& call) {
  Encoder& encoder = encoder_of(impl);
  const L2NormPairPlan plan = plan_l2_norm_pair(call, encoder.caps());
  if (!plan.one_launch) {
    // Both launches are enqueued before either name is returned: the record names both kernels.
    std::string first = enqueue_l2_norm(encoder, call.first, plan.first);
    std::string second = enqueue_l2_norm(encoder, call.second, plan.second);
    return first + "+" + second;
  }
  Launch launch;
  launch.kernel = kernel_for(encoder, plan.variant,
                             "call prewarm_l2_norm_pair(device, first, second) for every pair of "
                             "shapes before capturing");
  launch.grid = static_cast<std::uint32_t>(plan.grid);
  launch.block = static_cast<std::uint32_t>(plan.block);
  launch.programmatic = plan.programmatic;
  L2NormArgs first = make_l2_norm_args(call.first);
  L2NormArgs second = make_l2_norm_args(call.second);
  long long first_blocks = plan.first_blocks;
  void* parameters[] = {&first, &second, &first_blocks};
  encoder.launch(launch, parameters, "l2_norm_pair kernel launch");
  return plan.variant.name();
}

void prewarm(Backend, int device_index, const L2NormPairPrewarm& request) {
  load_kernels(device_index, l2_norm_pair_prewarm_variants(request.first, request.second,
                                                           device_caps(device_index)));
}

}  // namespace l2norm::detail::cuda

// Programmatic dependent launch (sm_90 and newer), for kernels the host may launch with
// programmatic stream serialization (Launch::programmatic): such a kernel may begin while the
// previous kernel of its stream still runs, so it calls wait_for_previous_kernel before touching
// memory. Without the launch attribute, and before sm_90, both calls do nothing.
#pragma once

namespace l2norm_kernels {

// Returns once the previous kernel of the stream has completed and its writes are visible.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel of the stream begin launching; that kernel still waits for this one to
// complete before touching memory (if it was launched programmatically at all).
__device__ __forceinline__ void allow_next_kernel_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

}  // namespace l2norm_kernels

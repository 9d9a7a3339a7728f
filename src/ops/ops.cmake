# The library's ops. One line per op registers it:
#   l2norm_add_op(NAME KERNELS a.cuh b.cuh ...)
# adds the op's files on every layer, by name:
#   src/ops/NAME.cpp            the public entry points: validation, the call description, dispatch
#   src/cpu/NAME_cpu.cpp        the CPU implementation
#   src/cuda/NAME_plan.cpp      the CUDA planner (pure; CUDA builds only)
#   src/cuda/NAME_cuda.cpp      the CUDA launcher (CUDA builds only)
#   src/cuda/kernels/<KERNELS>  the op's kernel sources, embedded for NVRTC (CUDA builds only)
# Its tests are any tests/ops/*_test.cpp files (collected by tests/ops/CMakeLists.txt) and GPU or
# planner tests under tests/cuda/.
l2norm_add_op(l2_norm KERNELS l2_norm_rows.cuh l2_norm_staged.cuh l2_norm_split.cuh)
l2norm_add_op(l2_norm_backward KERNELS l2_norm_backward_rows.cuh l2_norm_backward_split.cuh
              l2_norm_backward_math.cuh l2_norm_backward_args.cuh l2_norm_backward_policy.cuh)
l2norm_add_op(l2_norm_pair KERNELS l2_norm_pair.cuh)

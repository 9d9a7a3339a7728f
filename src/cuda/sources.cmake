# The CUDA backend, included by src/CMakeLists.txt when L2NORM_WITH_CUDA. Kernel sources are
# embedded into a generated .cpp and compiled at run time by NVRTC; host code is plain C++ against
# the static CUDA runtime and NVRTC.
# The headers every kernel may include, then each op's own kernels (ops/ops.cmake).
set(L2NORM_CUDA_KERNEL_FILES
  ${CMAKE_CURRENT_LIST_DIR}/kernels/dependent_launch.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/element.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/l2_norm_args.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/l2_norm_policy.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/partial_exchange.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/reduce.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/row_math.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/rows_body.cuh
  ${CMAKE_CURRENT_LIST_DIR}/kernels/tiles.cuh
  ${L2NORM_OP_KERNELS}
)
set(L2NORM_EMBEDDED_KERNELS ${PROJECT_BINARY_DIR}/generated/l2norm_cuda/embedded_kernels.cpp)
string(REPLACE ";" "|" l2norm_kernel_inputs "${L2NORM_CUDA_KERNEL_FILES}")
add_custom_command(
  OUTPUT ${L2NORM_EMBEDDED_KERNELS}
  COMMAND ${CMAKE_COMMAND} -DOUTPUT=${L2NORM_EMBEDDED_KERNELS} -DINPUTS=${l2norm_kernel_inputs}
          -P ${CMAKE_CURRENT_LIST_DIR}/embed_kernels.cmake
  DEPENDS ${L2NORM_CUDA_KERNEL_FILES} ${CMAKE_CURRENT_LIST_DIR}/embed_kernels.cmake
  COMMENT "Embedding l2norm CUDA kernel sources"
  VERBATIM)

target_sources(l2norm PRIVATE
  cuda/encoder.cpp
  cuda/nvrtc_backend.cpp
  cuda/runtime.cpp
  ${L2NORM_EMBEDDED_KERNELS}
)
include(${PROJECT_SOURCE_DIR}/cmake/L2normNvrtc.cmake)
target_link_libraries(l2norm PRIVATE CUDA::cudart_static l2norm::nvrtc)

# l2norm::nvrtc: the NVRTC shared library alone. CMake's CUDA::nvrtc target also links the driver
# library (libcuda.so), and a hard dependency on it would stop l2norm from loading on machines
# without an NVIDIA driver, where the CUDA backend must instead report itself absent. The driver
# is reached at run time through the CUDA runtime, which loads it on demand.
if(NOT TARGET l2norm::nvrtc)
  get_target_property(_l2norm_nvrtc_location CUDA::nvrtc IMPORTED_LOCATION)
  if(NOT _l2norm_nvrtc_location)
    find_library(_l2norm_nvrtc_location nvrtc HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  endif()
  add_library(l2norm::nvrtc SHARED IMPORTED GLOBAL)
  set_target_properties(l2norm::nvrtc PROPERTIES IMPORTED_LOCATION "${_l2norm_nvrtc_location}")
  unset(_l2norm_nvrtc_location)
endif()

// The kernel sources of src/cuda/kernels/, embedded at build time (embed_kernels.cmake writes the
// definition), so the library needs no files at run time.
#pragma once

#include <span>
#include <string_view>

namespace l2norm::detail::cuda {

struct EmbeddedSource {
  std::string_view name;  // the file name, which is also the #include name
  std::string_view text;
};

std::span<const EmbeddedSource> embedded_kernel_sources();

}  // namespace l2norm::detail::cuda

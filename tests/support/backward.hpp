// Running l2_norm_backward from host tensors, for the shared cases (tests/ops) and the GPU-only
// ones (tests/cuda).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "l2norm/l2norm.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {

// dy, y (or x) and rstd, as contiguous [rows, dim] tensors, and the call's form and options.
struct BackwardRun {
  const HostTensor& dy;
  const HostTensor& y;             // x when rstd is null
  const std::vector<float>* rstd;  // null: from the input
  DType dx_dtype;
  std::int64_t rows;
  std::int64_t dim;
  L2NormOptions options;
  bool in_place = false;  // dx is dy's buffer (dx_dtype must be dy's)
};

// Runs the backward on `device` through device buffers (dx poisoned first) and returns dx.
// `variant`, if given, receives the name of the kernel variant the dispatcher picked.
HostTensor run_backward(const Device& device, const BackwardRun& run,
                        std::string* variant = nullptr);

}  // namespace l2norm::testing

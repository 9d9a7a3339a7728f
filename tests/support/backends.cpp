#include "support/backends.hpp"

namespace l2norm::testing {

std::vector<Device> all_test_devices() {
  return {Device::cpu(), Device::cuda(0)};
}

std::string device_param_name(const ::testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "cpu" : "cuda" + std::to_string(info.param.index());
}

void OnEveryBackend::SetUp() {
  if (device().is_cuda() && (!cuda_available() || device().index() >= cuda_device_count())) {
    GTEST_SKIP() << device().name() << " not available here: " << cuda_unavailable_reason();
  }
}

}  // namespace l2norm::testing

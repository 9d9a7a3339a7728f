// Backend parametrization: the shared cases are written once and instantiated for every backend.
// CUDA cases are always instantiated and skip (GTEST_SKIP, reported as skipped) without a GPU.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "l2norm/l2norm.hpp"

namespace l2norm::testing {

// cpu, cuda:0
std::vector<Device> all_test_devices();
std::string device_param_name(const ::testing::TestParamInfo<Device>& info);

// Fixture base: SetUp() skips loudly when the parameter device is not usable here.
class OnEveryBackend : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override;
  Device device() const { return GetParam(); }
};

}  // namespace l2norm::testing

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

// Runs `call`, which must throw an Error(invalid_argument) whose message starts with `op` and
// ": " and contains `fragment`.
template <typename Call>
void expect_invalid_argument(Call&& call, const std::string& op, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no error thrown; expected one containing '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << error.what();
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(op + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos)
        << "message '" << message << "' lacks '" << fragment << "'";
  }
}

}  // namespace l2norm::testing

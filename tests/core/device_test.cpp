#include <gtest/gtest.h>

#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

TEST(Device, ParsesAndNames) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(2).name(), "cuda:2");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CPU"}) {
    EXPECT_THROW(Device::parse(bad), Error) << bad;
  }
}

TEST(Device, ListsTheCpuAndReportsCudaHonestly) {
  const auto devices = list_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_TRUE(devices.front().device.is_cpu());
  if (cuda_available()) {
    EXPECT_GE(cuda_device_count(), 1);
    EXPECT_TRUE(cuda_unavailable_reason().empty());
    return;
  }
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  try {
    CommandEncoder encoder(Device::cuda(0));
    FAIL() << "encoder created without a usable GPU";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(error.what()).find("cuda:0 is not usable"), std::string::npos);
  }
  EXPECT_THROW(Buffer(Device::cuda(0), DType::f32, 4), Error);
}

TEST(Device, MissingCudaDeviceIndexIsAClearError) {
  try {
    require_device(Device::cuda(999));
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(error.what()).find("cuda:999"), std::string::npos);
  }
}

TEST(Device, CpuThreadCountCanBeSetAndRestored) {
  set_cpu_thread_count(3);
  EXPECT_EQ(cpu_thread_count(), 3);
  set_cpu_thread_count(0);
  EXPECT_GE(cpu_thread_count(), 1);
}

}  // namespace
}  // namespace l2norm

// KernelRegistry behaviour that needs no GPU: sources, compile errors, cache folder, the absent
// backend's clear reason.
#include <gtest/gtest.h>

#include <string>

#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

TEST(CudaRegistry, RegisteringTheSameTextTwiceIsANoOpButOtherTextIsAnError) {
  KernelRegistry registry;
  registry.register_source("twice.cuh", "extern \"C\" __global__ void k() {}");
  registry.register_source("twice.cuh", "extern \"C\" __global__ void k() {}");
  EXPECT_TRUE(registry.has_source("twice.cuh"));
  try {
    registry.register_source("twice.cuh", "different");
    FAIL() << "expected Error(invalid_argument)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("twice.cuh"), std::string::npos);
  }
}

TEST(CudaRegistry, CompileFailureCarriesTheLogAndTheOptions) {
  KernelRegistry registry;
  registry.register_source("broken.cuh",
                           "extern \"C\" __global__ void broken() { undeclared_name = 1; }");
  try {
    registry.compile_for_arch({"broken.cuh", "broken", {"MY_DEFINE=7"}}, 90);
    FAIL() << "expected Error(compile)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::compile);
    const std::string message = error.what();
    EXPECT_NE(message.find("undeclared_name"), std::string::npos) << message;
    EXPECT_NE(message.find("-DMY_DEFINE=7"), std::string::npos) << message;
    EXPECT_NE(message.find("-arch=sm_90"), std::string::npos) << message;
  }
}

TEST(CudaRegistry, IncludesResolveToRegisteredSources) {
  KernelRegistry registry;
  registry.register_source("value.cuh", "#define VALUE 3.0f\n");
  registry.register_source(
      "uses_value.cuh",
      "#include \"value.cuh\"\n"
      "extern \"C\" __global__ void fill(float* x) { x[threadIdx.x] = VALUE; }");
  EXPECT_FALSE(registry.compile_for_arch({"uses_value.cuh", "fill", {}}, 80).empty());
}

TEST(CudaRegistry, UnregisteredSourceIsInvalidArgument) {
  KernelRegistry registry;
  try {
    registry.compile_for_arch({"missing.cuh", "k", {}}, 90);
    FAIL() << "expected Error(invalid_argument)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
  }
}

TEST(CudaRegistry, CacheDirCanBeOverridden) {
  KernelRegistry registry;
  registry.set_cache_dir("/tmp/l2norm-cache-dir-test");
  EXPECT_EQ(registry.cache_dir(), "/tmp/l2norm-cache-dir-test");
}

// Without a driver or a device the backend says why and refuses cleanly, never crashes.
TEST(CudaBackend, AbsenceIsReportedWithAReason) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present; nothing to check here";
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  EXPECT_EQ(cuda_device_count(), 0);
  try {
    CommandEncoder encoder(Device::cuda(0));
    FAIL() << "expected Error(unsupported)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(error.what()).find(cuda_unavailable_reason()), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace l2norm

// KernelRegistry behaviour that needs no GPU: sources, compile errors, cache folder, the absent
// backend's clear reason.
#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// A kernel holding 128 floats per thread in registers: launch bounds of 8 blocks of 256 threads
// per multiprocessor (32 registers a thread) force ptxas to spill them, 1 block does not.
constexpr const char* kRegisterHungry = R"(
extern "C" __global__ void __launch_bounds__(256, MINB) hungry(const float* x, float* y) {
  float v[128];
  for (int i = 0; i < 128; ++i) v[i] = x[threadIdx.x + i * 256];
  float s = 0.0f;
  for (int i = 0; i < 128; ++i) s += v[i] * v[i];
  for (int i = 0; i < 128; ++i) y[threadIdx.x + i * 256] = v[i] * s;
})";

TEST(CudaRegistry, SpillFallbackReplacesOnlyABuildThatSpills) {
  KernelRegistry registry;
  registry.register_source("hungry.cuh", kRegisterHungry);
  const std::vector<char> unbounded =
      registry.compile_for_arch({"hungry.cuh", "hungry", {"MINB=0"}}, 90);
  ASSERT_EQ(registry.stats().compiles, 1u);

  // Eight blocks spill: the fallback's build is what comes back. Both builds ran.
  KernelSpec spilling{"hungry.cuh", "hungry", {"MINB=8"}};
  spilling.spill_fallback_define = "MINB=0";
  EXPECT_EQ(registry.compile_for_arch(spilling, 90), unbounded);
  EXPECT_EQ(registry.stats().compiles, 3u);

  // One block does not: its own build, every time (it carries ptxas's report, so it is compared
  // with itself, not with a build without one).
  KernelSpec fits{"hungry.cuh", "hungry", {"MINB=1"}};
  fits.spill_fallback_define = "MINB=0";
  const std::vector<char> kept = registry.compile_for_arch(fits, 90);
  EXPECT_NE(kept, unbounded);
  EXPECT_EQ(registry.compile_for_arch(fits, 90), kept);
  EXPECT_EQ(registry.stats().compiles, 7u);
}

TEST(CudaRegistry, SpillFallbackMustReplaceADefine) {
  KernelRegistry registry;
  registry.register_source("hungry.cuh", kRegisterHungry);
  KernelSpec spec{"hungry.cuh", "hungry", {"MINB=8"}};
  spec.spill_fallback_define = "OTHER=0";
  try {
    registry.compile_for_arch(spec, 90);
    FAIL() << "expected Error(invalid_argument)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("OTHER=0"), std::string::npos) << error.what();
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

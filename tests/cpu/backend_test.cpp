// The CPU backend's own surface: memory, the thread-count setting, the encoder and variant names.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/backend.hpp"
#include "l2norm/l2norm.hpp"

namespace l2norm::testing {
namespace {

TEST(CpuAllocate, GivesCacheLineAlignedWritableMemory) {
  for (const std::size_t bytes : {std::size_t{1}, std::size_t{63}, std::size_t{64},
                                  std::size_t{1000}, std::size_t{9} << 20}) {
    void* pointer = detail::cpu::allocate(bytes);
    ASSERT_NE(pointer, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(pointer) % 64, 0u) << bytes << " bytes";
    static_cast<unsigned char*>(pointer)[bytes - 1] = 1;
    detail::cpu::release(pointer);
  }
}

TEST(CpuAllocate, ZeroBytesGivesAReleasablePointer) {
  void* first = detail::cpu::allocate(0);
  void* second = detail::cpu::allocate(0);
  EXPECT_NE(first, nullptr);
  EXPECT_NE(first, second);
  detail::cpu::release(first);
  detail::cpu::release(second);
  detail::cpu::release(nullptr);
}

TEST(CpuAllocate, FailureIsOutOfMemoryNamingTheSize) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer aborts on impossible allocations instead of returning null";
#endif
  for (const std::size_t bytes : {std::size_t{1} << 62, SIZE_MAX - 10}) {
    try {
      detail::cpu::release(detail::cpu::allocate(bytes));
      FAIL() << "allocating " << bytes << " bytes succeeded";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::out_of_memory);
      EXPECT_NE(std::string(error.what()).find(std::to_string(bytes)), std::string::npos)
          << error.what();
    }
  }
}

// Restores the default thread count whatever a test did.
class CpuThreadCount : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("L2NORM_NUM_THREADS");
    set_cpu_thread_count(0);
  }
};

TEST_F(CpuThreadCount, SetAndRestore) {
  set_cpu_thread_count(3);
  EXPECT_EQ(cpu_thread_count(), 3);
  set_cpu_thread_count(1);
  EXPECT_EQ(cpu_thread_count(), 1);
  unsetenv("L2NORM_NUM_THREADS");
  set_cpu_thread_count(0);
  const unsigned hardware = std::thread::hardware_concurrency();
  EXPECT_EQ(cpu_thread_count(), hardware == 0 ? 1 : int(hardware));
  set_cpu_thread_count(-5);
  EXPECT_EQ(cpu_thread_count(), hardware == 0 ? 1 : int(hardware));
}

TEST_F(CpuThreadCount, EnvironmentOverridesTheDefault) {
  setenv("L2NORM_NUM_THREADS", "5", 1);
  set_cpu_thread_count(0);
  EXPECT_EQ(cpu_thread_count(), 5);
  const unsigned hardware = std::thread::hardware_concurrency();
  for (const char* junk : {"", "0", "-2", "4x", "many"}) {
    setenv("L2NORM_NUM_THREADS", junk, 1);
    set_cpu_thread_count(0);
    EXPECT_EQ(cpu_thread_count(), hardware == 0 ? 1 : int(hardware)) << "'" << junk << "'";
  }
}

TEST_F(CpuThreadCount, ManyThreadsOnASmallJobStillWork) {
  set_cpu_thread_count(64);
  std::vector<float> data(4096 * 64, 1.0f);
  CommandEncoder encoder(Device::cpu());
  const TensorView view(data.data(), DType::f32, Device::cpu(), {4096, 64});
  l2_norm(encoder, view, view, {.eps = 0.0f});
  for (const float value : data) ASSERT_EQ(value, 0.125f);
}

TEST(CpuEncoder, RunsAtOnceAndNamesTheVariant) {
  std::vector<std::uint16_t> data(2 * 128, 0x3f80);  // bf16 1.0
  CommandEncoder encoder(Device::cpu());
  EXPECT_EQ(encoder.cuda_stream(), nullptr);
  const TensorView view(data.data(), DType::bf16, Device::cpu(), {2, 128});
  l2_norm(encoder, view, view, {.eps = 0.0f, .scale = 2.0f});
  // Synchronous: the result is there before commit or wait.
  EXPECT_EQ(bf16_bits_to_f32(data[5]), 0.1767578125f);
  ASSERT_EQ(encoder.recorded().size(), 1u);
  EXPECT_EQ(encoder.recorded()[0].variant, "cpu.l2_norm<bf16,add,scaled,cached>");
  l2_norm(encoder, view, view, {.eps_mode = EpsMode::clamp});
  EXPECT_EQ(encoder.recorded()[1].variant, "cpu.l2_norm<bf16,clamp,unscaled,cached>");
  EXPECT_EQ(encoder.commit(), 2u);
  encoder.wait();
}

}  // namespace
}  // namespace l2norm::testing

// KernelRegistry on a real device: one compile per key under 32 racing threads, the disk cache
// (hits, corrupted and truncated entries), and the compile guard.
#include <cuda_runtime_api.h>

#include <barrier>
#include <fstream>
#include <thread>
#include <vector>

#include "gpu_test_support.hpp"

namespace l2norm {
namespace {

using testing::TempDir;

constexpr const char* kFillSource =
    "extern \"C\" __global__ void fill(float* out, float value) {\n"
    "  out[threadIdx.x] = value * FACTOR;\n"
    "}\n";

const KernelSpec kFillSpec{"fill.cuh", "fill", {"FACTOR=2.0f"}};

// Runs the test kernel and checks that it wrote 2 * 3.5 into 32 floats.
void expect_fill_kernel_works(void* kernel) {
  void* device_out = nullptr;
  ASSERT_EQ(cudaMalloc(&device_out, 32 * sizeof(float)), cudaSuccess);
  float value = 3.5f;
  void* parameters[] = {&device_out, &value};
  ASSERT_EQ(cudaLaunchKernel(kernel, dim3(1), dim3(32), parameters, 0, nullptr), cudaSuccess);
  float host[32] = {};
  ASSERT_EQ(cudaMemcpy(host, device_out, sizeof host, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(device_out);
  for (const float x : host) EXPECT_EQ(x, 7.0f);
}

std::filesystem::path only_entry(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> entries;
  for (const auto& item : std::filesystem::directory_iterator(dir)) entries.push_back(item.path());
  EXPECT_EQ(entries.size(), 1u);
  return entries.empty() ? std::filesystem::path() : entries.front();
}

TEST(CudaRegistryGpu, ThirtyTwoThreadsOnAColdRegistryCompileOnce) {
  L2NORM_REQUIRE_GPU();
  TempDir dir("l2norm-cold");
  KernelRegistry registry;
  registry.set_cache_dir(dir.path().string());
  registry.register_source("fill.cuh", kFillSource);

  constexpr int kThreads = 32;
  std::vector<void*> kernels(kThreads, nullptr);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      kernels[static_cast<std::size_t>(t)] = registry.kernel(Device::cuda(0), kFillSpec);
    });
  }
  for (auto& thread : threads) thread.join();

  const RegistryStats stats = registry.stats();
  EXPECT_EQ(stats.compiles, 1u);
  EXPECT_EQ(stats.memory_hits, kThreads - 1u);
  EXPECT_EQ(stats.disk_hits, 0u);
  for (void* kernel : kernels) EXPECT_EQ(kernel, kernels.front());
  expect_fill_kernel_works(kernels.front());

  // Another registry (another process, in effect) finds the entry on disk.
  KernelRegistry second;
  second.set_cache_dir(dir.path().string());
  second.register_source("fill.cuh", kFillSource);
  expect_fill_kernel_works(second.kernel(Device::cuda(0), kFillSpec));
  EXPECT_EQ(second.stats().compiles, 0u);
  EXPECT_EQ(second.stats().disk_hits, 1u);
}

TEST(CudaRegistryGpu, CorruptedAndTruncatedDiskEntriesAreRejectedAndRecompiled) {
  L2NORM_REQUIRE_GPU();
  TempDir dir("l2norm-corrupt");
  KernelRegistry registry;
  registry.set_cache_dir(dir.path().string());
  registry.register_source("fill.cuh", kFillSource);
  registry.kernel(Device::cuda(0), kFillSpec);
  const std::filesystem::path entry = only_entry(dir.path());
  const auto size = std::filesystem::file_size(entry);

  // One flipped byte in the payload: the checksum disagrees.
  {
    std::fstream file(entry, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(size - 17));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    file.seekp(static_cast<std::streamoff>(size - 17));
    file.write(&byte, 1);
  }
  registry.clear_memory_cache();
  expect_fill_kernel_works(registry.kernel(Device::cuda(0), kFillSpec));
  EXPECT_EQ(registry.stats().disk_rejects, 1u);
  EXPECT_EQ(registry.stats().compiles, 2u);

  // The recompiled entry replaced the bad one.
  registry.clear_memory_cache();
  registry.kernel(Device::cuda(0), kFillSpec);
  EXPECT_EQ(registry.stats().disk_hits, 1u);

  // Cut in half: the size disagrees.
  std::filesystem::resize_file(entry, size / 2);
  registry.clear_memory_cache();
  expect_fill_kernel_works(registry.kernel(Device::cuda(0), kFillSpec));
  EXPECT_EQ(registry.stats().disk_rejects, 2u);
  EXPECT_EQ(registry.stats().compiles, 3u);

  // Shorter than the header.
  std::filesystem::resize_file(entry, 5);
  registry.clear_memory_cache();
  expect_fill_kernel_works(registry.kernel(Device::cuda(0), kFillSpec));
  EXPECT_EQ(registry.stats().disk_rejects, 3u);
  EXPECT_EQ(std::filesystem::file_size(entry), size);
}

TEST(CudaRegistryGpu, CompileGuardTurnsAMissIntoAClearError) {
  L2NORM_REQUIRE_GPU();
  TempDir dir("l2norm-guard");
  KernelRegistry registry;
  registry.set_cache_dir(dir.path().string());
  registry.register_source("fill.cuh", kFillSource);
  {
    CompileGuard guard;
    try {
      registry.kernel(Device::cuda(0), kFillSpec);
      FAIL() << "expected Error(unsupported)";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::unsupported);
      EXPECT_NE(std::string(error.what()).find("prewarm"), std::string::npos);
    }
  }
  void* compiled = registry.kernel(Device::cuda(0), kFillSpec);
  CompileGuard guard;
  EXPECT_EQ(registry.kernel(Device::cuda(0), kFillSpec), compiled);
}

}  // namespace
}  // namespace l2norm

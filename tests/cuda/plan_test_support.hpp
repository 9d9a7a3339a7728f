// Helpers shared by the CUDA planner tests, which need no GPU: written-out device descriptions,
// contiguous l2_norm calls, and compiling kernel variants through NVRTC on every core. The dtype
// list kDTypes comes from support/reference.hpp.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cuda/device_caps.hpp"
#include "cuda/embedded_kernels.hpp"
#include "l2norm/l2norm.hpp"
#include "ops/l2_norm_call.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {

// name, arch, SMs, max blocks / SM, max threads / SM, shared memory per block (opt-in), global
// memory, L2: as cudaGetDeviceProperties reports them.
inline const detail::cuda::DeviceCaps kH100{
    "NVIDIA H100 80GB HBM3", 90, 132, 32, 2048, 232448, 85030011904, std::size_t{50} << 20};
inline const detail::cuda::DeviceCaps kH200{
    "NVIDIA H200", 90, 132, 32, 2048, 232448, 150754820096, std::size_t{60} << 20};
inline const detail::cuda::DeviceCaps kA100{
    "NVIDIA A100-SXM4-80GB", 80, 108, 32, 2048, 166912, 85094301696, std::size_t{40} << 20};
inline const detail::cuda::DeviceCaps kSm86{
    "NVIDIA RTX A4000", 86, 48, 16, 1536, 101376, 16890134528, std::size_t{4} << 20};

// The widest vector, in bytes, that a contiguous row of `dim` elements of `dtype` allows.
inline int widest_vector_bytes(DType dtype, std::int64_t dim) {
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
  int vector_bytes = 16;
  while (vector_bytes > element_bytes && (dim * element_bytes) % vector_bytes != 0) {
    vector_bytes /= 2;
  }
  return vector_bytes;
}

// A contiguous l2_norm call of rows x dim in `dtype` on both sides, with vectors of
// `vector_bytes`.
inline detail::L2NormCall contiguous_l2_norm_call(DType dtype, std::int64_t rows, std::int64_t dim,
                                                  int vector_bytes, float scale = 1.0f,
                                                  EpsMode eps_mode = EpsMode::add) {
  detail::L2NormCall call{};
  call.dtype = dtype;
  call.output_dtype = dtype;
  call.rows = rows;
  call.dim = dim;
  call.layout.outer_rank = 1;
  call.layout.outer_sizes[0] = rows;
  call.layout.input_strides[0] = dim;
  call.layout.output_strides[0] = dim;
  call.eps = 1e-6f;
  call.scale = scale;
  call.scaled = scale != 1.0f;
  call.eps_mode = eps_mode;
  call.vector_bytes = vector_bytes;
  return call;
}

// Expects a plan's split shape to have `expected`'s blocks per row, tiles per block, rows per wave
// and waves; `what` names the case in failures.
template <typename SplitShape>
void expect_split_shape(const SplitShape& got, const SplitShape& expected,
                        const std::string& what) {
  EXPECT_EQ(got.blocks_per_row, expected.blocks_per_row) << what;
  EXPECT_EQ(got.tiles_per_block, expected.tiles_per_block) << what;
  EXPECT_EQ(got.rows_per_wave, expected.rows_per_wave) << what;
  EXPECT_EQ(got.waves, expected.waves) << what;
}

// `registry` with every embedded kernel source registered.
inline void register_embedded_sources(KernelRegistry& registry) {
  for (const auto& source : detail::cuda::embedded_kernel_sources()) {
    registry.register_source(source.name, source.text);
  }
}

// Compiles every one of `variants` for every one of `archs` through `registry`
// (KernelRegistry::compile_for_arch), on as many threads as the machine has cores and at least
// two. Returns one line per variant and arch that failed or gave a cubin under 64 bytes.
template <typename Variant>
std::vector<std::string> compile_for_archs(KernelRegistry& registry,
                                           const std::vector<Variant>& variants,
                                           std::initializer_list<int> archs) {
  struct Job {
    const Variant* variant;
    int arch;
  };
  std::vector<Job> jobs;
  for (const int arch : archs) {
    for (const auto& variant : variants) jobs.push_back({&variant, arch});
  }
  std::atomic<std::size_t> next{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  const auto worker = [&] {
    for (std::size_t i = next++; i < jobs.size(); i = next++) {
      try {
        const std::vector<char> cubin =
            registry.compile_for_arch(jobs[i].variant->spec(), jobs[i].arch);
        if (cubin.size() < 64) throw std::runtime_error("cubin too small");
      } catch (const std::exception& error) {
        std::lock_guard lock(failures_mutex);
        failures.push_back(jobs[i].variant->name() + " sm_" + std::to_string(jobs[i].arch) + ": " +
                           error.what());
      }
    }
  };
  std::vector<std::thread> threads;
  const unsigned thread_count = std::max(2u, std::thread::hardware_concurrency());
  for (unsigned t = 0; t < thread_count; ++t) threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();
  return failures;
}

// Compiles a bounded rows variant's spec (launch bounds of `min_blocks`, with its spill fallback)
// for sm_90 through `registry`, prints which build the registry kept under `name`, and checks that
// the spec compiles. The kept bounded build differs from the unbounded one, if only by ptxas's
// report, so comparing with the unbounded build tells which one came back.
inline void expect_bounded_build_or_fallback(KernelRegistry& registry, const KernelSpec& spec,
                                             int min_blocks, const std::string& name) {
  ASSERT_GT(min_blocks, 0) << name;
  ASSERT_EQ(spec.spill_fallback_define, "L2NORM_MIN_BLOCKS=0") << name;
  const std::vector<char> chosen = registry.compile_for_arch(spec, 90);
  KernelSpec unbounded = spec;
  unbounded.spill_fallback_define.clear();
  std::replace(unbounded.defines.begin(), unbounded.defines.end(),
               "L2NORM_MIN_BLOCKS=" + std::to_string(min_blocks),
               std::string("L2NORM_MIN_BLOCKS=0"));
  const bool fell_back = chosen == registry.compile_for_arch(unbounded, 90);
  std::printf("%s: %s\n", name.c_str(),
              fell_back ? "spills when bounded: unbounded build" : "bounded build kept");
}

}  // namespace l2norm::testing

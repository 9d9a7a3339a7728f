// CPU l2_norm bandwidth against the floor, for f32, f16 and bf16: every iteration times a plain
// copy of the same bytes (input read plus output written) and then the op, on the same buffers, so
// both see the same machine state. The copy is timed twice, as one memcpy and as one memcpy per
// thread over contiguous slices (the op's thread count): one core alone may not saturate memory,
// and the floor is the faster of the two. Each shape class moves the same bytes in every dtype
// (the 16-bit q/k case has twice the f32 rows), so all of them meet the same memory regime. Cases
// named ".../+16B" place input and output 16 bytes past a cache line, as NumPy allocates them.
// Counters: copy1_GBps, copyN_GBps, copy_GBps (the better), ours_GBps and ratio = ours / copy (1.0
// = at the copy floor). The reported time is the op's.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "l2norm/l2norm.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct BenchCase {
  l2norm::DType dtype;
  std::int64_t rows;
  std::int64_t dim;
  std::int64_t offset_bytes = 0;  // of both tensors from the buffers' 64-byte aligned starts
};

// Uniform values in [-1, 1) from a xorshift generator: cheap enough to fill gigabytes.
void fill_random(l2norm::Buffer& buffer) {
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  const auto next_value = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<float>(static_cast<double>(state >> 40) * 0x1p-23 - 1.0);
  };
  const auto count = static_cast<std::size_t>(buffer.count());
  if (buffer.dtype() == l2norm::DType::f32) {
    auto* values = static_cast<float*>(buffer.data());
    for (std::size_t i = 0; i < count; ++i) values[i] = next_value();
    return;
  }
  auto* bits = static_cast<std::uint16_t*>(buffer.data());
  const bool bf16 = buffer.dtype() == l2norm::DType::bf16;
  for (std::size_t i = 0; i < count; ++i) {
    bits[i] = bf16 ? l2norm::f32_to_bf16_bits(next_value()) : l2norm::f32_to_f16_bits(next_value());
  }
}

void run_case(benchmark::State& state, const BenchCase& bench_case) {
  const l2norm::Device cpu = l2norm::Device::cpu();
  const std::int64_t count = bench_case.rows * bench_case.dim;
  const auto element_bytes = static_cast<std::int64_t>(l2norm::dtype_size(bench_case.dtype));
  const std::int64_t spare = (bench_case.offset_bytes + element_bytes - 1) / element_bytes;
  l2norm::Buffer input_buffer(cpu, bench_case.dtype, count + spare);
  l2norm::Buffer output_buffer(cpu, bench_case.dtype, count + spare);
  fill_random(input_buffer);
  // Fault the output pages in before timing anything.
  std::memset(output_buffer.data(), 0, output_buffer.bytes());
  char* const input_data = static_cast<char*>(input_buffer.data()) + bench_case.offset_bytes;
  char* const output_data = static_cast<char*>(output_buffer.data()) + bench_case.offset_bytes;
  const auto bytes = static_cast<std::size_t>(count * element_bytes);
  const l2norm::TensorView input(input_data, bench_case.dtype, cpu,
                                 {bench_case.rows, bench_case.dim});
  const l2norm::TensorView output(output_data, bench_case.dtype, cpu,
                                  {bench_case.rows, bench_case.dim});
  l2norm::CommandEncoder encoder(cpu);

  const double bytes_moved = 2.0 * static_cast<double>(bytes);
  const auto copy_once = [&] {
    std::memcpy(output_data, input_data, bytes);
    benchmark::ClobberMemory();
  };
  const auto threads = static_cast<std::size_t>(l2norm::cpu_thread_count());
  const auto parallel_copy_once = [&] {
    const std::size_t slice = (bytes + threads - 1) / threads;
    std::vector<std::jthread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
      const std::size_t begin = std::min(t * slice, bytes);
      const std::size_t length = std::min(slice, bytes - begin);
      workers.emplace_back(
          [&, begin, length] { std::memcpy(output_data + begin, input_data + begin, length); });
    }
    workers.clear();
    benchmark::ClobberMemory();
  };
  const auto normalize_once = [&] {
    l2norm::l2_norm(encoder, input, output, {});
    encoder.commit();
  };
  copy_once();
  parallel_copy_once();
  normalize_once();

  double copy_seconds = 0.0;
  double parallel_copy_seconds = 0.0;
  double op_seconds = 0.0;
  for (auto _ : state) {
    const Clock::time_point start = Clock::now();
    copy_once();
    const Clock::time_point copied = Clock::now();
    parallel_copy_once();
    const Clock::time_point parallel_copied = Clock::now();
    normalize_once();
    const Clock::time_point normalized = Clock::now();
    const double op_time = std::chrono::duration<double>(normalized - parallel_copied).count();
    state.SetIterationTime(op_time);
    copy_seconds += std::chrono::duration<double>(copied - start).count();
    parallel_copy_seconds += std::chrono::duration<double>(parallel_copied - copied).count();
    op_seconds += op_time;
  }
  const double iterations = static_cast<double>(state.iterations());
  const double single_copy_rate = bytes_moved * iterations / copy_seconds / 1e9;
  const double parallel_copy_rate = bytes_moved * iterations / parallel_copy_seconds / 1e9;
  const double copy_rate = std::max(single_copy_rate, parallel_copy_rate);
  const double op_rate = bytes_moved * iterations / op_seconds / 1e9;
  state.counters["copy1_GBps"] = single_copy_rate;
  state.counters["copyN_GBps"] = parallel_copy_rate;
  state.counters["copy_GBps"] = copy_rate;
  state.counters["ours_GBps"] = op_rate;
  state.counters["ratio"] = op_rate / copy_rate;
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_moved * iterations));
  state.SetLabel(std::to_string(l2norm::cpu_thread_count()) + " threads");
}

// Leaves a quarter of the free memory to everything else on the machine.
bool fits_in_memory(const BenchCase& bench_case) {
  const double needed = 2.0 * static_cast<double>(bench_case.rows * bench_case.dim + 64) *
                        static_cast<double>(l2norm::dtype_size(bench_case.dtype));
  const double available =
      static_cast<double>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return needed < 0.75 * available;
}

}  // namespace

int main(int argc, char** argv) {
  const BenchCase cases[] = {
      {l2norm::DType::f32, 131072, 512},      // 256 MiB input
      {l2norm::DType::f16, 262144, 512},      // 256 MiB input
      {l2norm::DType::bf16, 262144, 512},     // 256 MiB input
      {l2norm::DType::f32, 1000000, 768},     // 3 GiB input: embedding corpus
      {l2norm::DType::f16, 1000000, 768},     // the same corpus in 16 bits
      {l2norm::DType::bf16, 1000000, 768},    //
      {l2norm::DType::f32, 65536, 128},       // q/k heads, 32 MiB input
      {l2norm::DType::f16, 131072, 128},      //
      {l2norm::DType::bf16, 131072, 128},     //
      {l2norm::DType::f32, 4096, 4096},       // long rows
      {l2norm::DType::f32, 8, 1048576},       //
      {l2norm::DType::f32, 131072, 100},      // rows that are not whole cache lines
      {l2norm::DType::f32, 131072, 512, 16},  // NumPy's layout: 16 bytes past a line
      {l2norm::DType::bf16, 131072, 128, 16},
  };
  for (const BenchCase& bench_case : cases) {
    const std::string name =
        "l2_norm/" + std::string(l2norm::dtype_name(bench_case.dtype)) + "/" +
        std::to_string(bench_case.rows) + "x" + std::to_string(bench_case.dim) +
        (bench_case.offset_bytes != 0 ? "/+" + std::to_string(bench_case.offset_bytes) + "B" : "");
    if (!fits_in_memory(bench_case)) {
      std::fprintf(stderr, "skipping %s: not enough free memory\n", name.c_str());
      continue;
    }
    benchmark::RegisterBenchmark(
        name.c_str(), [bench_case](benchmark::State& state) { run_case(state, bench_case); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// l2norm-bench: for each shape, the op's GPU time, its bandwidth and its ratio to a
// device-to-device cudaMemcpyAsync of the same bytes measured in the same run (large shapes: L2
// flushed before each run, median of runs; small shapes: CUDA-graph replay of many dispatches).
// Then host time per dispatch against a bare launch of an empty kernel, and cold / warm first-call
// latency per variant.
#include <cuda_runtime_api.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/l2_norm_args.cuh"
#include "cuda/l2_norm_plan.hpp"
#include "cuda/runtime.hpp"
#include "l2norm/l2norm.hpp"

namespace {

using l2norm::DType;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s failed: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

struct Shape {
  std::int64_t rows;
  std::int64_t dim;
  DType dtype;
};

// CPU time of this process (user + system), in ms.
double process_cpu_ms() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto ms = [](const timeval& time) {
    return static_cast<double>(time.tv_sec) * 1e3 + static_cast<double>(time.tv_usec) / 1e3;
  };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

struct FirstCall {
  double wall_ms;
  double cpu_ms;
};

double machine_uptime_seconds() {
  double seconds = 0;
  if (std::FILE* file = std::fopen("/proc/uptime", "r")) {
    if (std::fscanf(file, "%lf", &seconds) != 1) seconds = 0;
    std::fclose(file);
  }
  return seconds;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

class Timer {
 public:
  explicit Timer(cudaStream_t stream) : stream_(stream) {
    check(cudaEventCreate(&start_), "cudaEventCreate");
    check(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Microseconds of GPU time taken by `work` (enqueued on the stream).
  double time_us(const std::function<void()>& work) {
    check(cudaEventRecord(start_, stream_), "cudaEventRecord");
    work();
    check(cudaEventRecord(stop_, stream_), "cudaEventRecord");
    check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
    return static_cast<double>(ms) * 1000.0;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

// Median time of one `work` with L2 flushed before each run (a memset larger than L2).
double flushed_median_us(cudaStream_t stream, Timer& timer, void* flush, std::size_t flush_bytes,
                         const std::function<void()>& work, int runs) {
  std::vector<double> times;
  work();
  for (int run = 0; run < runs; ++run) {
    check(cudaMemsetAsync(flush, run & 0xff, flush_bytes, stream), "flush");
    times.push_back(timer.time_us(work));
  }
  return median(times);
}

// Median time of one `work` from replays of a graph holding `per_graph` of them.
double graph_median_us(cudaStream_t stream, Timer& timer, const std::function<void()>& work,
                       int per_graph, int replays) {
  cudaGraph_t graph = nullptr;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  for (int i = 0; i < per_graph; ++i) work();
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  cudaGraphExec_t executable = nullptr;
  check(cudaGraphInstantiate(&executable, graph, 0), "cudaGraphInstantiate");
  check(cudaGraphLaunch(executable, stream), "cudaGraphLaunch");
  std::vector<double> times;
  for (int replay = 0; replay < replays; ++replay) {
    times.push_back(timer.time_us([&] { check(cudaGraphLaunch(executable, stream), "launch"); }) /
                    per_graph);
  }
  cudaGraphExecDestroy(executable);
  cudaGraphDestroy(graph);
  return median(times);
}

void fill_random(void* device, std::size_t bytes, DType dtype) {
  // Random normal-ish values in a host staging buffer, written in 64 MiB pieces.
  const std::size_t element = l2norm::dtype_size(dtype);
  const std::size_t piece = (std::size_t{64} << 20) / element * element;
  std::vector<unsigned char> staging(std::min(piece, bytes));
  std::mt19937 generator(1234);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  for (std::size_t i = 0; i < staging.size() / element; ++i) {
    const float value = uniform(generator);
    if (dtype == DType::f32) {
      std::memcpy(staging.data() + i * 4, &value, 4);
    } else {
      const std::uint16_t bits =
          dtype == DType::bf16 ? l2norm::f32_to_bf16_bits(value) : l2norm::f32_to_f16_bits(value);
      std::memcpy(staging.data() + i * 2, &bits, 2);
    }
  }
  for (std::size_t offset = 0; offset < bytes; offset += staging.size()) {
    const std::size_t count = std::min(staging.size(), bytes - offset);
    check(cudaMemcpy(static_cast<unsigned char*>(device) + offset, staging.data(), count,
                     cudaMemcpyHostToDevice),
          "fill");
  }
  // The copies may still be in flight on the legacy stream, which the bench's stream ignores.
  check(cudaStreamSynchronize(cudaStreamLegacy), "sync after fill");
}

std::string shape_name(const Shape& shape) {
  return std::to_string(shape.rows) + " x " + std::to_string(shape.dim) + " " +
         std::string(l2norm::dtype_name(shape.dtype));
}

}  // namespace

int main() {
  // NVRTC 12.9+ keeps its own cache of compiled programs in the driver's compute cache, which
  // outlives this process: with it, a "cold" compile of a kernel compiled before on this machine
  // (by the tests, or an earlier run) takes 13.5-17 ms instead of 100-500 ms on the H100 machine.
  // Off here, so that cold means compiled, as for a user's first run.
  setenv("CUDA_CACHE_DISABLE", "1", 1);
  if (!l2norm::cuda_available()) {
    std::printf("l2norm-bench: no CUDA device: %s\n", l2norm::cuda_unavailable_reason().c_str());
    return 0;
  }
  const l2norm::Device device = l2norm::Device::cuda(0);
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  std::printf("# l2norm-bench on %s (sm_%d%d, %d SMs, L2 %d MiB)\n\n", properties.name,
              properties.major, properties.minor, properties.multiProcessorCount,
              properties.l2CacheSize >> 20);

  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  Timer timer(stream);
  l2norm::CommandEncoder encoder(device, stream);
  const l2norm::detail::cuda::DeviceCaps& caps = l2norm::detail::cuda::device_caps(0);
  const std::size_t flush_bytes = static_cast<std::size_t>(properties.l2CacheSize) * 4;
  void* flush = nullptr;
  check(cudaMalloc(&flush, flush_bytes), "cudaMalloc flush");

  const std::vector<Shape> shapes = {
      {32, 128, DType::bf16},
      {2048, 128, DType::bf16},
      {65536, 128, DType::bf16},
      {524288, 128, DType::bf16},
      {524288, 128, DType::f32},
      {1000000, 768, DType::f32},
      {100000, 4096, DType::bf16},
      {65536, 100, DType::f32},
      {4096, 1000, DType::bf16},
      {64, 65536, DType::f32},
      {8, 1048576, DType::f32},
      // Long rows in large batches (not in the list): staged, one block per row, where a
      // block holds the row (on an H100 up to 3 f32 or 7 16-bit tiles of 16384), else split in
      // waves.
      {512, 131072, DType::f32},
      {4096, 32768, DType::bf16},
      {4096, 20000, DType::f32},
      {2048, 65536, DType::bf16},
  };
  const l2norm::L2NormOptions options;  // eps 1e-6, add, no scale

  // One table row: `op` (one l2_norm dispatch, its output `bytes` long) against `copy` of as many
  // bytes, both timed the same way: L2 flushed before each of 30 runs when the buffers are larger
  // than L2, else a graph of 200 replayed 20 times.
  const auto report_row = [&](const std::string& label, std::size_t bytes,
                              const std::function<void()>& copy, const std::function<void()>& op) {
    op();
    const std::string variant = encoder.recorded().back().variant;
    encoder.wait();
    const bool large = 2 * bytes > static_cast<std::size_t>(properties.l2CacheSize);
    const auto time_us = [&](const std::function<void()>& work) {
      return large ? flushed_median_us(stream, timer, flush, flush_bytes, work, 30)
                   : graph_median_us(stream, timer, work, 200, 20);
    };
    const double copy_us = time_us(copy);
    const double op_us = time_us(op);
    encoder.commit();
    const double moved = 2.0 * static_cast<double>(bytes);
    std::printf("| %s | %.1f | %s | %.2f | %.2f | %.0f | %.3f | `%s` |\n", label.c_str(),
                moved / (1 << 20), large ? "L2 flushed" : "graph replay", copy_us, op_us,
                moved / (op_us * 1e3), copy_us / op_us, variant.c_str());
    std::fflush(stdout);
  };

  std::printf(
      "| shape (rows x dim, dtype) | MiB moved | method | copy us | l2_norm us | GB/s | "
      "ratio copy/op | variant |\n|---|---|---|---|---|---|---|---|\n");
  for (const Shape& shape : shapes) {
    const std::int64_t count = shape.rows * shape.dim;
    const std::size_t bytes = static_cast<std::size_t>(count) * l2norm::dtype_size(shape.dtype);
    l2norm::Buffer in(device, shape.dtype, count);
    l2norm::Buffer out(device, shape.dtype, count);
    fill_random(in.data(), bytes, shape.dtype);
    l2norm::prewarm_l2_norm(device, shape.dtype, shape.dim, options);
    const auto op = [&] { l2norm::l2_norm(encoder, in, out, shape.rows, shape.dim, options); };
    const auto copy = [&] {
      check(cudaMemcpyAsync(out.data(), in.data(), bytes, cudaMemcpyDeviceToDevice, stream),
            "cudaMemcpyAsync");
    };
    report_row(shape_name(shape), bytes, copy, op);
  }

  // The floor on this GPU: cudaMemcpyAsync device to device and a plain copy kernel (16-byte
  // vectors, a grid-stride loop over every multiprocessor's full thread count), for the bytes of
  // each shape of the first table, timed as that table times them.
  {
    l2norm::KernelRegistry& registry = l2norm::KernelRegistry::global();
    registry.register_source(
        "l2norm_bench_copy.cuh",
        "extern \"C\" __global__ void copy16(const uint4* in, uint4* out, "
        "long long n) {\n"
        "  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;"
        " i < n; i += (long long)gridDim.x * blockDim.x) out[i] = in[i];\n"
        "}\n");
    void* copy_kernel = registry.kernel(device, {"l2norm_bench_copy.cuh", "copy16", {}});
    const unsigned copy_blocks = static_cast<unsigned>(
        properties.multiProcessorCount * (properties.maxThreadsPerMultiProcessor / 256));
    std::printf(
        "\n| floor: bytes copied (MiB) | cudaMemcpyAsync us | GB/s | copy kernel us | GB/s | "
        "kernel / memcpy |\n|---|---|---|---|---|---|\n");
    std::vector<std::size_t> sizes;
    for (const Shape& shape : shapes) {
      const std::size_t bytes =
          static_cast<std::size_t>(shape.rows * shape.dim) * l2norm::dtype_size(shape.dtype);
      if (std::find(sizes.begin(), sizes.end(), bytes) == sizes.end()) sizes.push_back(bytes);
    }
    std::sort(sizes.begin(), sizes.end());
    for (const std::size_t bytes : sizes) {
      l2norm::Buffer in(device, DType::bf16, static_cast<std::int64_t>(bytes / 2));
      l2norm::Buffer out(device, DType::bf16, static_cast<std::int64_t>(bytes / 2));
      fill_random(in.data(), bytes, DType::bf16);
      const bool large = 2 * bytes > static_cast<std::size_t>(properties.l2CacheSize);
      const auto time_us = [&](const std::function<void()>& work) {
        return large ? flushed_median_us(stream, timer, flush, flush_bytes, work, 30)
                     : graph_median_us(stream, timer, work, 200, 20);
      };
      const double memcpy_us = time_us([&] {
        check(cudaMemcpyAsync(out.data(), in.data(), bytes, cudaMemcpyDeviceToDevice, stream),
              "cudaMemcpyAsync");
      });
      const void* source = in.data();
      void* destination = out.data();
      long long vectors = static_cast<long long>(bytes / 16);
      void* parameters[] = {&source, &destination, &vectors};
      const unsigned blocks = static_cast<unsigned>(
          std::min<long long>(copy_blocks, std::max<long long>(1, (vectors + 255) / 256)));
      const double kernel_us = time_us([&] {
        check(cudaLaunchKernel(copy_kernel, dim3(blocks), dim3(256), parameters, 0, stream),
              "copy kernel launch");
      });
      const double moved = 2.0 * static_cast<double>(bytes);
      std::printf("| %.1f | %.2f | %.0f | %.2f | %.0f | %.3f |\n",
                  static_cast<double>(bytes) / (1 << 20), memcpy_us, moved / (memcpy_us * 1e3),
                  kernel_us, moved / (kernel_us * 1e3), kernel_us / memcpy_us);
      std::fflush(stdout);
    }
  }

  // The forward with its per-row rstd output (what training saves for the backward pass) against
  // the plain forward, both timed as the first table times them, in this run.
  std::printf(
      "\n| with rstd (rows x dim, dtype) | copy us | l2_norm us | l2_norm + rstd us | ratio | "
      "ratio with rstd |\n|---|---|---|---|---|---|\n");
  for (const Shape& shape : {Shape{32, 128, DType::bf16}, Shape{524288, 128, DType::bf16},
                             Shape{524288, 128, DType::f32}, Shape{100000, 4096, DType::bf16},
                             Shape{8, 1048576, DType::f32}, Shape{4096, 32768, DType::bf16}}) {
    const std::int64_t count = shape.rows * shape.dim;
    const std::size_t bytes = static_cast<std::size_t>(count) * l2norm::dtype_size(shape.dtype);
    l2norm::Buffer in(device, shape.dtype, count);
    l2norm::Buffer out(device, shape.dtype, count);
    l2norm::Buffer rstd(device, DType::f32, shape.rows);
    fill_random(in.data(), bytes, shape.dtype);
    l2norm::prewarm_l2_norm(device, shape.dtype, shape.dim, options);
    const l2norm::TensorView in_view = in.view({shape.rows, shape.dim});
    const l2norm::TensorView out_view = out.view({shape.rows, shape.dim});
    const l2norm::TensorView rstd_view = rstd.view();
    const bool large = 2 * bytes > static_cast<std::size_t>(properties.l2CacheSize);
    const auto time_us = [&](const std::function<void()>& work) {
      return large ? flushed_median_us(stream, timer, flush, flush_bytes, work, 30)
                   : graph_median_us(stream, timer, work, 200, 20);
    };
    const double copy_us = time_us([&] {
      check(cudaMemcpyAsync(out.data(), in.data(), bytes, cudaMemcpyDeviceToDevice, stream),
            "cudaMemcpyAsync");
    });
    const double plain_us = time_us([&] { l2norm::l2_norm(encoder, in_view, out_view, options); });
    const double rstd_us =
        time_us([&] { l2norm::l2_norm(encoder, in_view, out_view, rstd_view, options); });
    encoder.commit();
    std::printf("| %s | %.2f | %.2f | %.2f | %.3f | %.3f |\n", shape_name(shape).c_str(), copy_us,
                plain_us, rstd_us, copy_us / plain_us, copy_us / rstd_us);
    std::fflush(stdout);
  }

  // The backward pass from saved y and rstd (reads dy and y, writes dx) and from the input x
  // (reads dy and x, writes dx), against a copy that moves as many bytes: 1.5 times one tensor's
  // bytes read and written. Timed as the first table times them, in this run.
  std::printf(
      "\n| backward (rows x dim, dtype) | MiB moved | method | copy us | backward us | ratio "
      "copy/op | from x us | ratio from x | plain launch us | ratio plain launch | variant |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<Shape> backward_shapes(shapes.begin(), shapes.begin() + 11);
  backward_shapes.push_back({65536, 128, DType::f32});
  for (const Shape& shape : backward_shapes) {
    const std::int64_t count = shape.rows * shape.dim;
    const std::size_t bytes = static_cast<std::size_t>(count) * l2norm::dtype_size(shape.dtype);
    const std::size_t copy_bytes = (bytes + bytes / 2) & ~std::size_t{1};
    l2norm::Buffer x(device, shape.dtype, count);
    l2norm::Buffer y(device, shape.dtype, count);
    l2norm::Buffer dy(device, shape.dtype, count);
    l2norm::Buffer dx(device, shape.dtype, count);
    l2norm::Buffer rstd(device, DType::f32, shape.rows);
    l2norm::Buffer copy_in(device, DType::bf16, static_cast<std::int64_t>(copy_bytes / 2));
    l2norm::Buffer copy_out(device, DType::bf16, static_cast<std::int64_t>(copy_bytes / 2));
    fill_random(x.data(), bytes, shape.dtype);
    fill_random(dy.data(), bytes, shape.dtype);
    const l2norm::TensorView x_view = x.view({shape.rows, shape.dim});
    const l2norm::TensorView y_view = y.view({shape.rows, shape.dim});
    const l2norm::TensorView dy_view = dy.view({shape.rows, shape.dim});
    const l2norm::TensorView dx_view = dx.view({shape.rows, shape.dim});
    const l2norm::TensorView rstd_view = rstd.view();
    l2norm::prewarm_l2_norm(device, shape.dtype, shape.dim, options);
    l2norm::prewarm_l2_norm_backward(device, shape.dtype, shape.dtype, shape.dtype, shape.dim,
                                     options, false);
    l2norm::prewarm_l2_norm_backward(device, shape.dtype, shape.dtype, shape.dtype, shape.dim,
                                     options, true);
    l2norm::l2_norm(encoder, x_view, y_view, rstd_view, options);
    l2norm::l2_norm_backward(encoder, dy_view, y_view, rstd_view, dx_view, options);
    const std::string variant = encoder.recorded().back().variant;
    encoder.wait();
    const bool large = 3 * bytes > static_cast<std::size_t>(properties.l2CacheSize);
    const auto time_us = [&](const std::function<void()>& work) {
      return large ? flushed_median_us(stream, timer, flush, flush_bytes, work, 30)
                   : graph_median_us(stream, timer, work, 200, 20);
    };
    const double copy_us = time_us([&] {
      check(cudaMemcpyAsync(copy_out.data(), copy_in.data(), copy_bytes, cudaMemcpyDeviceToDevice,
                            stream),
            "cudaMemcpyAsync");
    });
    const double backward_us = time_us(
        [&] { l2norm::l2_norm_backward(encoder, dy_view, y_view, rstd_view, dx_view, options); });
    const double from_x_us = time_us(
        [&] { l2norm::l2_norm_backward_from_input(encoder, dy_view, x_view, dx_view, options); });
    // The same backward launched without programmatic stream serialization (on sm_90 and newer
    // the rows kernel has it by default), so the table shows what the overlap costs or buys.
    encoder.set_launch_overlap(false);
    const double plain_us = time_us(
        [&] { l2norm::l2_norm_backward(encoder, dy_view, y_view, rstd_view, dx_view, options); });
    encoder.set_launch_overlap(true);
    encoder.commit();
    const double moved = 3.0 * static_cast<double>(bytes);
    std::printf("| %s | %.1f | %s | %.2f | %.2f | %.3f | %.2f | %.3f | %.2f | %.3f | `%s` |\n",
                shape_name(shape).c_str(), moved / (1 << 20), large ? "L2 flushed" : "graph replay",
                copy_us, backward_us, copy_us / backward_us, from_x_us, copy_us / from_x_us,
                plain_us, copy_us / plain_us, variant.c_str());
    std::fflush(stdout);
  }

  // Strided rows: q of a fused qkv projection (tokens x heads x head_dim inside rows of
  // 3 x heads x head_dim, as a Gated DeltaNet layer reads it), normalized per head into a
  // contiguous buffer. Tokens and heads cannot merge into one row index, so each row's address
  // takes a division. The copy is a plain copy of as many bytes (cudaMemcpy2DAsync of the strided
  // rows runs far below the memory floor on an H100: 161.6 us for the 32768-token q, against 96.5
  // for l2_norm).
  std::printf(
      "\n| strided q of a fused qkv (tokens x heads x head_dim, dtype) | MiB moved | method | "
      "copy us | l2_norm us | GB/s | ratio copy/op | variant |\n|---|---|---|---|---|---|---|"
      "---|\n");
  for (const std::int64_t tokens : {32, 2048, 32768}) {
    const std::int64_t heads = 16;
    const std::int64_t head_dim = 128;
    const DType dtype = DType::bf16;
    const std::int64_t qkv_row = 3 * heads * head_dim;
    l2norm::Buffer qkv(device, dtype, tokens * qkv_row);
    l2norm::Buffer out(device, dtype, tokens * heads * head_dim);
    fill_random(qkv.data(), qkv.bytes(), dtype);
    const l2norm::TensorView q(qkv.data(), dtype, device, {tokens, heads, head_dim},
                               {qkv_row, head_dim, 1});
    const l2norm::TensorView q_out(out.data(), dtype, device, {tokens, heads, head_dim});
    const auto op = [&] { l2norm::l2_norm(encoder, q, q_out, options); };
    const std::size_t bytes = out.bytes();
    const auto copy = [&] {
      check(cudaMemcpyAsync(out.data(), qkv.data(), bytes, cudaMemcpyDeviceToDevice, stream),
            "cudaMemcpyAsync");
    };
    report_row(std::to_string(tokens) + " x " + std::to_string(heads) + " x " +
                   std::to_string(head_dim) + " " + std::string(l2norm::dtype_name(dtype)),
               bytes, copy, op);
  }

  // Decode shapes: what programmatic dependent launch buys. The encoder's dispatches in a chain of
  // 200 kernel nodes, once with plain launches and once with launches that overlap the previous
  // kernel's tail (the default, on sm_90 and newer), next to the copy node chain, all in this run.
  {
    l2norm::KernelRegistry& registry = l2norm::KernelRegistry::global();
    std::printf(
        "\n| decode shape (graph of 200) | copy us | plain launch us | overlapped launch us | "
        "encoder / copy |\n|---|---|---|---|---|\n");
    for (const Shape& shape : {Shape{32, 128, DType::bf16}, Shape{2048, 128, DType::bf16}}) {
      const std::int64_t count = shape.rows * shape.dim;
      l2norm::Buffer in(device, shape.dtype, count);
      l2norm::Buffer out(device, shape.dtype, count);
      fill_random(in.data(), in.bytes(), shape.dtype);
      l2norm::prewarm_l2_norm(device, shape.dtype, shape.dim, options);
      const auto dispatch = [&] {
        l2norm::l2_norm(encoder, in, out, shape.rows, shape.dim, options);
      };
      const double copy_us = graph_median_us(
          stream, timer,
          [&] {
            check(cudaMemcpyAsync(out.data(), in.data(), in.bytes(), cudaMemcpyDeviceToDevice,
                                  stream),
                  "cudaMemcpyAsync");
          },
          200, 20);
      encoder.set_launch_overlap(false);
      const double plain_us = graph_median_us(stream, timer, dispatch, 200, 20);
      encoder.set_launch_overlap(true);
      const double overlapped_us = graph_median_us(stream, timer, dispatch, 200, 20);
      encoder.commit();
      std::printf("| %s | %.2f | %.2f | %.2f | %.2fx |\n", shape_name(shape).c_str(), copy_us,
                  plain_us, overlapped_us, overlapped_us / copy_us);
      std::fflush(stdout);
    }
    // The floor of any kernel node chain: an empty kernel, one block of 32 threads.
    registry.register_source("l2norm_bench_empty.cuh", "extern \"C\" __global__ void empty() {}");
    void* empty = registry.kernel(device, {"l2norm_bench_empty.cuh", "empty", {}});
    const double empty_us = graph_median_us(
        stream, timer,
        [&] {
          check(cudaLaunchKernel(empty, dim3(1), dim3(32), nullptr, 0, stream), "empty launch");
        },
        200, 20);
    std::printf("\nempty kernel node chain (graph of 200): %.2f us per node\n", empty_us);
  }

  // q and k of a decode step, tokens x 16 heads x 128 bf16 each, q scaled by 1 / sqrt(128): one
  // l2_norm_pair dispatch against two l2_norm dispatches and one copy of both tensors' bytes, each
  // a chain of 200 graph nodes (dispatches), in this run.
  {
    std::printf(
        "\n| pair q + k (tokens x heads x head_dim, dtype, each) | copy us | two l2_norm us | "
        "l2_norm_pair us | pair / copy | two / pair | variant |\n|---|---|---|---|---|---|---|\n");
    for (const std::int64_t tokens : {32, 2048, 32768}) {
      const std::int64_t heads = 16;
      const std::int64_t head_dim = 128;
      const DType dtype = DType::bf16;
      const std::int64_t count = tokens * heads * head_dim;
      l2norm::Buffer q(device, dtype, count);
      l2norm::Buffer k(device, dtype, count);
      l2norm::Buffer q_out(device, dtype, count);
      l2norm::Buffer k_out(device, dtype, count);
      l2norm::Buffer both_in(device, dtype, 2 * count);
      l2norm::Buffer both_out(device, dtype, 2 * count);
      fill_random(q.data(), q.bytes(), dtype);
      fill_random(k.data(), k.bytes(), dtype);
      const l2norm::L2NormOptions q_options{.scale = 0.08838834764f};
      const l2norm::L2NormOptions k_options;
      l2norm::prewarm_l2_norm(device, dtype, head_dim, q_options);
      l2norm::prewarm_l2_norm(device, dtype, head_dim, k_options);
      l2norm::prewarm_l2_norm_pair(device, {dtype, dtype, head_dim, q_options},
                                   {dtype, dtype, head_dim, k_options});
      const l2norm::TensorView q_view = q.view({tokens, heads, head_dim});
      const l2norm::TensorView k_view = k.view({tokens, heads, head_dim});
      const l2norm::TensorView q_out_view = q_out.view({tokens, heads, head_dim});
      const l2norm::TensorView k_out_view = k_out.view({tokens, heads, head_dim});
      const auto pair = [&] {
        l2norm::l2_norm_pair(encoder, {q_view, q_out_view, std::nullopt, q_options},
                             {k_view, k_out_view, std::nullopt, k_options});
      };
      pair();
      const std::string variant = encoder.recorded().back().variant;
      encoder.wait();
      const bool large = 4 * q.bytes() > static_cast<std::size_t>(properties.l2CacheSize);
      const auto time_us = [&](const std::function<void()>& work) {
        return large ? flushed_median_us(stream, timer, flush, flush_bytes, work, 30)
                     : graph_median_us(stream, timer, work, 200, 20);
      };
      const double copy_us = time_us([&] {
        check(cudaMemcpyAsync(both_out.data(), both_in.data(), both_in.bytes(),
                              cudaMemcpyDeviceToDevice, stream),
              "cudaMemcpyAsync");
      });
      const double two_us = time_us([&] {
        l2norm::l2_norm(encoder, q_view, q_out_view, q_options);
        l2norm::l2_norm(encoder, k_view, k_out_view, k_options);
      });
      const double pair_us = time_us(pair);
      encoder.commit();
      std::printf("| %lld x %lld x %lld %s | %.2f | %.2f | %.2f | %.2fx | %.2fx | `%s` |\n",
                  static_cast<long long>(tokens), static_cast<long long>(heads),
                  static_cast<long long>(head_dim), std::string(l2norm::dtype_name(dtype)).c_str(),
                  copy_us, two_us, pair_us, pair_us / copy_us, two_us / pair_us, variant.c_str());
      std::fflush(stdout);
    }
  }

  // Host cost of one dispatch (32 x 128 bf16) against a bare launch of an empty kernel, both
  // through cudaLaunchKernel on the same stream; GPU drained between batches.
  {
    l2norm::KernelRegistry& registry = l2norm::KernelRegistry::global();
    registry.register_source("l2norm_bench_empty.cuh", "extern \"C\" __global__ void empty() {}");
    void* empty = registry.kernel(device, {"l2norm_bench_empty.cuh", "empty", {}});
    l2norm::Buffer in(device, DType::bf16, 32 * 128);
    l2norm::Buffer out(device, DType::bf16, 32 * 128);
    fill_random(in.data(), in.bytes(), DType::bf16);
    // Per-dispatch host time of one batch of 200; the GPU is drained before each batch.
    const auto batch_us = [&](const std::function<void()>& work) {
      check(cudaStreamSynchronize(stream), "sync");
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 200; ++i) work();
      const auto stop = std::chrono::steady_clock::now();
      return std::chrono::duration<double, std::micro>(stop - start).count() / 200;
    };
    // Batches of the two alternate, so a drift in the machine's speed hits both alike.
    std::vector<double> empty_batches;
    std::vector<double> op_batches;
    for (int batch = 0; batch < 40; ++batch) {
      empty_batches.push_back(batch_us([&] {
        check(cudaLaunchKernel(empty, dim3(1), dim3(32), nullptr, 0, stream), "empty launch");
      }));
      op_batches.push_back(batch_us([&] {
        l2norm::l2_norm(encoder, in, out, 32, 128, options);
        encoder.commit();
      }));
    }
    const double empty_us = median(empty_batches);
    const double op_us = median(op_batches);
    std::printf(
        "\n| host time per dispatch | us |\n|---|---|\n| empty kernel, cudaLaunchKernel "
        "| %.2f |\n| l2_norm 32 x 128 bf16 (validate, record, launch, commit) | %.2f |\n"
        "| difference | %.2f |\n",
        empty_us, op_us, op_us - empty_us);
    encoder.wait();
  }

  // First-call latency per variant (NVRTC's own cache off, see main): cold = empty disk cache
  // (NVRTC compile + load), three times, the median reported with the range; warm = the entry the
  // last cold call wrote (disk read + load). Memory cache cleared before each. One cold compile
  // varies from run to run by up to about 2x on shared machines, so a single sample says little.
  {
    l2norm::KernelRegistry& registry = l2norm::KernelRegistry::global();
    const std::string previous_dir = registry.cache_dir();
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "l2norm-bench-cache";
    std::filesystem::remove_all(dir);
    registry.set_cache_dir(dir.string());
    // CPU time of the cold calls tells a slow compiler (CPU ms close to the wall time) from a
    // machine that makes it wait (wall time far above CPU ms).
    std::printf("\nmachine up %.0f s\n", machine_uptime_seconds());
    std::printf(
        "\n| variant | cold first call ms (median of 3) | cold range ms | cold CPU ms (median) "
        "| warm first call ms |\n|---|---|---|---|---|\n");
    std::vector<l2norm::detail::cuda::L2NormVariant> variants;
    for (const Shape& shape : shapes) {
      for (const auto& variant : l2norm::detail::cuda::l2_norm_prewarm_variants(
               shape.dtype, shape.dim, options.eps_mode, false, caps)) {
        const bool seen = std::find(variants.begin(), variants.end(), variant) != variants.end();
        if (!seen && variant.vector_bytes == 16) variants.push_back(variant);
      }
    }
    // An unaligned variant: bf16 rows read 2 bytes at a time.
    for (const auto& variant : l2norm::detail::cuda::l2_norm_prewarm_variants(
             DType::bf16, 128, options.eps_mode, false, caps)) {
      if (variant.vector_bytes == 2) variants.push_back(variant);
    }
    for (const auto& variant : variants) {
      const auto first_call = [&] {
        registry.clear_memory_cache();
        const double cpu_before = process_cpu_ms();
        const auto start = std::chrono::steady_clock::now();
        registry.kernel(device, variant.spec());
        const auto stop = std::chrono::steady_clock::now();
        return FirstCall{std::chrono::duration<double, std::milli>(stop - start).count(),
                         process_cpu_ms() - cpu_before};
      };
      std::vector<double> cold_ms;
      std::vector<double> cold_cpu_ms;
      for (int sample = 0; sample < 3; ++sample) {
        std::filesystem::remove_all(dir);
        const FirstCall cold = first_call();
        cold_ms.push_back(cold.wall_ms);
        cold_cpu_ms.push_back(cold.cpu_ms);
      }
      const FirstCall warm = first_call();
      std::printf("| `%s` | %.1f | %.1f - %.1f | %.1f | %.2f |\n", variant.name().c_str(),
                  median(cold_ms), *std::min_element(cold_ms.begin(), cold_ms.end()),
                  *std::max_element(cold_ms.begin(), cold_ms.end()), median(cold_cpu_ms),
                  warm.wall_ms);
    }
    registry.set_cache_dir(previous_dir);
    std::filesystem::remove_all(dir);
    const l2norm::RegistryStats stats = registry.stats();
    std::printf("\nregistry: %llu compiles, %llu disk hits, %llu memory hits, %llu disk rejects\n",
                static_cast<unsigned long long>(stats.compiles),
                static_cast<unsigned long long>(stats.disk_hits),
                static_cast<unsigned long long>(stats.memory_hits),
                static_cast<unsigned long long>(stats.disk_rejects));
  }
  cudaFree(flush);
  cudaStreamDestroy(stream);
  return 0;
}

// The CUDA encoder: the caller's stream, CUDA-graph capture and replay after prewarm, and the clear
// errors when a capture would need a compile or an encoder made.
#include <cuda_runtime_api.h>

#include "gpu_test_support.hpp"
#include "support/reference.hpp"

namespace l2norm {
namespace {

using testing::HostTensor;

struct DeviceTensor {
  DeviceTensor(const HostTensor& host)
      : buffer(Device::cuda(0), host.dtype(), static_cast<std::int64_t>(host.count())) {
    buffer.copy_from_host(host.data(), host.bytes());
  }
  HostTensor read() const {
    HostTensor host(buffer.dtype(), static_cast<std::size_t>(buffer.count()));
    buffer.copy_to_host(host.data(), host.bytes());
    return host;
  }
  Buffer buffer;
};

TEST(CudaEncoder, RecordsOnTheCallersStream) {
  L2NORM_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  L2NORM_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const std::int64_t rows = 300;
  const std::int64_t dim = 128;
  const HostTensor input = testing::random_tensor(DType::bf16, rows * dim, 11);
  DeviceTensor in(input);
  HostTensor poison(DType::bf16, input.count());
  poison.fill_poison();
  DeviceTensor out(poison);
  {
    CommandEncoder encoder(Device::cuda(0), stream);
    EXPECT_EQ(encoder.cuda_stream(), static_cast<void*>(stream));
    l2_norm(encoder, in.buffer, out.buffer, rows, dim);
    EXPECT_EQ(encoder.commit(), 1u);
    L2NORM_CUDA_OK(cudaStreamSynchronize(stream));
    encoder.wait();
  }
  testing::expect_within_budget(out.read(), testing::reference_l2_norm(input, rows, dim, {}), dim,
                                false, "caller's stream");
  L2NORM_CUDA_OK(cudaStreamDestroy(stream));
}

// Short rows, staged rows and three split dispatches of different grids on one encoder (one wave
// and three waves of on-chip rows, and streamed rows, on an H100), captured into a graph and
// replayed: results match an eager run bit for bit, every replay. The split dispatches share the
// encoder's tag counter, which each must leave ready for the next one and the next replay.
TEST(CudaEncoder, GraphCaptureAndReplayAfterPrewarm) {
  L2NORM_REQUIRE_GPU();
  const L2NormOptions options{1e-6f, 0.125f, EpsMode::add};
  struct Case {
    DType dtype;
    std::int64_t rows;
    std::int64_t dim;
  };
  const Case cases[] = {{DType::bf16, 64, 128},
                        {DType::f32, 8, 1 << 17},
                        {DType::bf16, 200, 1 << 15},
                        {DType::f32, 40, 1 << 19},
                        {DType::f32, 2, 1 << 24}};
  for (const Case& c : cases) prewarm_l2_norm(Device::cuda(0), c.dtype, c.dim, options);

  cudaStream_t stream = nullptr;
  L2NORM_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<HostTensor> inputs;
  std::vector<std::unique_ptr<DeviceTensor>> ins;
  std::vector<std::unique_ptr<DeviceTensor>> outs;
  for (const Case& c : cases) {
    inputs.push_back(testing::random_tensor(c.dtype, static_cast<std::size_t>(c.rows * c.dim), 5));
    ins.push_back(std::make_unique<DeviceTensor>(inputs.back()));
    HostTensor poison(c.dtype, inputs.back().count());
    poison.fill_poison();
    outs.push_back(std::make_unique<DeviceTensor>(poison));
  }
  std::vector<HostTensor> eager;
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    eager.push_back(
        testing::run_l2_norm(Device::cuda(0), inputs[i], cases[i].rows, cases[i].dim, options));
  }

  CommandEncoder encoder(Device::cuda(0), stream);
  cudaGraph_t graph = nullptr;
  L2NORM_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    l2_norm(encoder, ins[i]->buffer, outs[i]->buffer, cases[i].rows, cases[i].dim, options);
  }
  L2NORM_CUDA_OK(cudaStreamEndCapture(stream, &graph));
  const char* kernels[] = {"l2_norm_rows<", "l2_norm_split_on_chip<", "l2_norm_staged<",
                           "l2_norm_split_on_chip<", "l2_norm_split_streamed<"};
  ASSERT_EQ(encoder.recorded().size(), std::size(cases));
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    EXPECT_EQ(encoder.recorded()[i].variant.rfind(kernels[i], 0), 0u)
        << "case " << i << ": " << encoder.recorded()[i].variant;
  }
  encoder.commit();
  cudaGraphExec_t executable = nullptr;
  L2NORM_CUDA_OK(cudaGraphInstantiate(&executable, graph, 0));
  for (int replay = 0; replay < 3; ++replay) {
    L2NORM_CUDA_OK(cudaGraphLaunch(executable, stream));
    L2NORM_CUDA_OK(cudaStreamSynchronize(stream));
    for (std::size_t i = 0; i < std::size(cases); ++i) {
      EXPECT_TRUE(outs[i]->read().bitwise_equal(eager[i])) << "case " << i << " replay " << replay;
    }
  }
  cudaGraphExecDestroy(executable);
  cudaGraphDestroy(graph);
  L2NORM_CUDA_OK(cudaStreamDestroy(stream));
}

TEST(CudaEncoder, CaptureThatWouldCompileRaisesAClearError) {
  L2NORM_REQUIRE_GPU();
  // A variant no other test in this binary loads: f16, clamp, scaled, 200-element rows.
  const L2NormOptions options{1e-3f, 3.0f, EpsMode::clamp};
  const std::int64_t rows = 4;
  const std::int64_t dim = 200;
  Buffer in(Device::cuda(0), DType::f16, rows * dim);
  Buffer out(Device::cuda(0), DType::f16, rows * dim);
  cudaStream_t stream = nullptr;
  L2NORM_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CommandEncoder encoder(Device::cuda(0), stream);
  L2NORM_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    l2_norm(encoder, in, out, rows, dim, options);
    ADD_FAILURE() << "expected Error(unsupported)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(error.what()).find("prewarm_l2_norm"), std::string::npos) << error.what();
  }
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess)
      << "the capture must still be intact";
  if (graph != nullptr) cudaGraphDestroy(graph);
  L2NORM_CUDA_OK(cudaStreamDestroy(stream));
}

// An encoder made for a stream under capture (global mode, PyTorch's default, where an allocation
// would invalidate the capture) refuses with a clear error and leaves the capture intact; one made
// before the capture records into it.
TEST(CudaEncoder, MadeDuringACaptureRaisesAClearError) {
  L2NORM_REQUIRE_GPU();
  const std::int64_t rows = 4;
  const std::int64_t dim = 128;
  prewarm_l2_norm(Device::cuda(0), DType::f32, dim);
  Buffer in(Device::cuda(0), DType::f32, rows * dim);
  Buffer out(Device::cuda(0), DType::f32, rows * dim);
  cudaStream_t stream = nullptr;
  L2NORM_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CommandEncoder before(Device::cuda(0), stream);
  L2NORM_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  try {
    CommandEncoder during(Device::cuda(0), stream);
    ADD_FAILURE() << "expected Error(unsupported)";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(error.what()).find("being captured"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("before the capture"), std::string::npos)
        << error.what();
  }
  l2_norm(before, in, out, rows, dim);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess)
      << "the capture must still be intact";
  ASSERT_NE(graph, nullptr);
  std::size_t nodes = 0;
  L2NORM_CUDA_OK(cudaGraphGetNodes(graph, nullptr, &nodes));
  EXPECT_EQ(nodes, 1u) << "the captured graph holds the one kernel and nothing of the refused "
                          "encoder";
  cudaGraphDestroy(graph);
  L2NORM_CUDA_OK(cudaStreamDestroy(stream));
}

}  // namespace
}  // namespace l2norm

// Every error path of the op layer: an invalid_argument Error whose message names the op and the
// offending values, raised before any backend runs, leaving the output untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

class Validation : public OnEveryBackend {};

// Runs `call`, expects Error(code) whose message contains every fragment.
template <typename Call>
void expect_error(Call&& call, ErrorCode code, std::initializer_list<const char*> fragments) {
  try {
    call();
    ADD_FAILURE() << "no error thrown; expected one containing " << *fragments.begin();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), code) << error.what();
    for (const char* fragment : fragments) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
          << "message '" << error.what() << "' lacks '" << fragment << "'";
    }
  }
}

TEST_P(Validation, FlatEntryRejectsZeroRowsOrDim) {
  Buffer in(device(), DType::f32, 4), out(device(), DType::f32, 4);
  CommandEncoder encoder(device());
  expect_error([&] { l2_norm(encoder, in, out, 0, 4); }, ErrorCode::invalid_argument,
               {"l2_norm", "rows=0"});
  expect_error([&] { l2_norm(encoder, in, out, 4, 0); }, ErrorCode::invalid_argument,
               {"l2_norm", "dim=0"});
  expect_error([&] { l2_norm(encoder, in, out, -1, 4); }, ErrorCode::invalid_argument, {"rows=-1"});
}

TEST_P(Validation, FlatEntryRejectsElementCountMismatch) {
  Buffer in(device(), DType::f32, 4095), out(device(), DType::f32, 4096);
  CommandEncoder encoder(device());
  expect_error([&] { l2_norm(encoder, in, out, 32, 128); }, ErrorCode::invalid_argument,
               {"l2_norm: input has 4095 elements, expected rows(32) * dim(128) = 4096"});
  expect_error([&] { l2_norm(encoder, out, in, 32, 128); }, ErrorCode::invalid_argument,
               {"output has 4095 elements"});
  expect_error([&] { l2_norm(encoder, in, out, std::int64_t{1} << 40, std::int64_t{1} << 40); },
               ErrorCode::invalid_argument, {"overflows"});
}

// Input and output dtypes may differ, but not in place: the output at the input's address with
// another dtype is refused, naming both dtypes, in every form.
TEST_P(Validation, RejectsInPlaceWithAnotherDType) {
  Buffer in(device(), DType::f32, 8);
  const std::vector<float> ones(8, 1.0f);
  in.copy_from_host(ones.data(), ones.size() * sizeof(float));
  CommandEncoder encoder(device());
  const TensorView x = in.view({2, 4});
  const TensorView as_bf16(in.data(), DType::bf16, device(), {2, 4});
  expect_error([&] { l2_norm(encoder, x, as_bf16); }, ErrorCode::invalid_argument,
               {"l2_norm: output is the input in place but their dtypes differ (input f32, output "
                "bf16); in place needs one dtype"});
  const TensorView as_f32(in.data(), DType::f32, device(), {2, 4});
  const TensorView bf16_in(in.data(), DType::bf16, device(), {2, 4});
  expect_error([&] { l2_norm(encoder, bf16_in, as_f32); }, ErrorCode::invalid_argument,
               {"(input bf16, output f32)"});
  Buffer rstd(device(), DType::f32, 2);
  expect_error([&] { l2_norm(encoder, x, as_bf16, rstd.view({2})); }, ErrorCode::invalid_argument,
               {"l2_norm: output is the input in place", "f32", "bf16"});
  EXPECT_TRUE(encoder.recorded().empty());
  // Another dtype in separate memory is a valid call, in both forms.
  Buffer out(device(), DType::bf16, 8);
  EXPECT_NO_THROW(l2_norm(encoder, in, out, 2, 4));
  EXPECT_NO_THROW(l2_norm(encoder, x, out.view({2, 4})));
  EXPECT_EQ(encoder.recorded().size(), 2u);
  encoder.wait();
}

TEST_P(Validation, RejectsUnsupportedDTypeCode) {
  Buffer in(device(), DType::f32, 8);
  CommandEncoder encoder(device());
  const TensorView bogus(in.data(), static_cast<DType>(7), device(), {2, 4});
  expect_error([&] { l2_norm(encoder, bogus, bogus); }, ErrorCode::invalid_argument,
               {"unsupported dtype code 7"});
  Buffer out(device(), DType::f32, 8);
  const TensorView bogus_output(out.data(), static_cast<DType>(9), device(), {2, 4});
  expect_error(
      [&] {
        l2_norm(encoder, in.view({2, 4}), bogus_output);
      },
      ErrorCode::invalid_argument, {"l2_norm: output has unsupported dtype code 9"});
  expect_error([&] { prewarm_l2_norm(device(), DType::f32, static_cast<DType>(5), 128); },
               ErrorCode::invalid_argument, {"l2_norm: output has unsupported dtype code 5"});
}

TEST_P(Validation, RejectsBadEpsAndScale) {
  Buffer in(device(), DType::f32, 8), out(device(), DType::f32, 8);
  CommandEncoder encoder(device());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  expect_error([&] { l2_norm(encoder, in, out, 2, 4, {.eps = -1e-6f}); },
               ErrorCode::invalid_argument, {"eps must be finite and >= 0, got -9.99999997e-07"});
  expect_error([&] { l2_norm(encoder, in, out, 2, 4, {.eps = nan}); }, ErrorCode::invalid_argument,
               {"eps", "nan"});
  expect_error([&] { l2_norm(encoder, in, out, 2, 4, {.scale = inf}); },
               ErrorCode::invalid_argument, {"scale must be finite, got inf"});
}

TEST_P(Validation, RejectsShapeMismatchAndZeroDim) {
  Buffer in(device(), DType::f32, 8), out(device(), DType::f32, 8);
  CommandEncoder encoder(device());
  expect_error(
      [&] {
        l2_norm(encoder, in.view({2, 4}), out.view({4, 2}));
      },
      ErrorCode::invalid_argument, {"input shape [2, 4] and output shape [4, 2] differ"});
  const TensorView zero_dim(in.data(), DType::f32, device(), {4, 0});
  expect_error([&] { l2_norm(encoder, zero_dim, zero_dim); }, ErrorCode::invalid_argument,
               {"dim is 0 (shape [4, 0])"});
}

TEST_P(Validation, RejectsNonUnitLastStrideAndNegativeStrides) {
  Buffer in(device(), DType::f32, 64), out(device(), DType::f32, 64);
  CommandEncoder encoder(device());
  const TensorView columns(in.data(), DType::f32, device(), {4, 4}, {1, 4});
  const TensorView packed(out.data(), DType::f32, device(), {4, 4});
  expect_error([&] { l2_norm(encoder, columns, packed); }, ErrorCode::invalid_argument,
               {"input last-dim stride is 4, must be 1"});
  auto* last_row = static_cast<float*>(in.data()) + 12;
  const TensorView reversed(last_row, DType::f32, device(), {4, 4}, {-4, 1});
  expect_error([&] { l2_norm(encoder, reversed, packed); }, ErrorCode::invalid_argument,
               {"input stride -4 of dim 0 is negative"});
}

TEST_P(Validation, RejectsOutputRowsOverlappingEachOther) {
  Buffer in(device(), DType::f32, 64), out(device(), DType::f32, 64);
  CommandEncoder encoder(device());
  const TensorView input(in.data(), DType::f32, device(), {4, 8});
  const TensorView overlapping(out.data(), DType::f32, device(), {4, 8}, {4, 1});
  expect_error([&] { l2_norm(encoder, input, overlapping); }, ErrorCode::invalid_argument,
               {"output rows overlap each other", "strides [4, 1]"});
}

TEST_P(Validation, RejectsPartialOverlapButAllowsExactInPlace) {
  Buffer buffer(device(), DType::f32, 40);
  const HostTensor values = random_tensor(DType::f32, 40, 1);
  buffer.copy_from_host(values.data(), values.bytes());
  CommandEncoder encoder(device());
  const TensorView first(buffer.data(), DType::f32, device(), {4, 8});
  const TensorView shifted(static_cast<float*>(buffer.data()) + 8, DType::f32, device(), {4, 8});
  expect_error([&] { l2_norm(encoder, first, shifted); }, ErrorCode::invalid_argument,
               {"output overlaps input"});
  EXPECT_NO_THROW(l2_norm(encoder, first, first));
  encoder.wait();
}

TEST_P(Validation, RejectsDeviceMismatch) {
  if (!device().is_cpu()) {
    Buffer gpu(device(), DType::f32, 8), cpu(Device::cpu(), DType::f32, 8);
    CommandEncoder encoder(device());
    expect_error([&] { l2_norm(encoder, gpu, cpu, 2, 4); }, ErrorCode::invalid_argument,
                 {"output is on cpu but input is on cuda:0"});
    CommandEncoder cpu_encoder(Device::cpu());
    expect_error([&] { l2_norm(cpu_encoder, gpu, gpu, 2, 4); }, ErrorCode::invalid_argument,
                 {"tensors are on cuda:0 but the encoder records for cpu"});
    return;
  }
  Buffer in(device(), DType::f32, 8);
  const TensorView on_gpu(in.data(), DType::f32, Device::cuda(0), {2, 4});
  CommandEncoder encoder(device());
  expect_error(
      [&] {
        l2_norm(encoder, in.view({2, 4}), on_gpu);
      },
      ErrorCode::invalid_argument, {"output is on cuda:0 but input is on cpu"});
}

TEST_P(Validation, ErrorLeavesOutputUntouched) {
  Buffer in(device(), DType::f32, 8), out(device(), DType::f32, 8);
  const HostTensor before = random_tensor(DType::f32, 8, 2);
  out.copy_from_host(before.data(), before.bytes());
  CommandEncoder encoder(device());
  EXPECT_THROW(l2_norm(encoder, in, out, 2, 4, {.eps = -1.0f}), Error);
  encoder.wait();
  HostTensor after(DType::f32, 8);
  out.copy_to_host(after.data(), after.bytes());
  EXPECT_TRUE(before.bitwise_equal(after));
  EXPECT_TRUE(encoder.recorded().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, Validation, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

// Views the op must refuse before any backend touches memory (extents that overflow or wrap the
// address space, null data), and views it must accept because they share no element with each
// other (interleaved rows). Every refusal leaves the memory around the views as it was.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

class ViewSafety : public OnEveryBackend {
 protected:
  // A device buffer of `count` f32 elements filled with random values; `host` keeps the copy.
  Buffer filled(std::int64_t count, std::uint64_t seed, HostTensor& host) {
    host = random_tensor(DType::f32, std::size_t(count), seed);
    Buffer buffer(device(), DType::f32, count);
    buffer.copy_from_host(host.data(), host.bytes());
    return buffer;
  }

  HostTensor read_back(const Buffer& buffer) {
    HostTensor host(buffer.dtype(), std::size_t(buffer.count()));
    buffer.copy_to_host(host.data(), host.bytes());
    return host;
  }
};

// Runs `call`, expects Error(invalid_argument) whose message contains every fragment.
template <typename Call>
void expect_invalid(Call&& call, std::initializer_list<const char*> fragments) {
  try {
    call();
    ADD_FAILURE() << "no error thrown; expected one containing '" << *fragments.begin() << "'";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << error.what();
    for (const char* fragment : fragments) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
          << "message '" << error.what() << "' lacks '" << fragment << "'";
    }
  }
}

float* at(const Buffer& buffer, std::int64_t element) {
  return static_cast<float*>(buffer.data()) + element;
}

TEST_P(ViewSafety, RejectsInputWhoseByteExtentOverflows) {
  // (2^62 + 4) elements of 4 bytes: the byte offset of row 1 wraps to that of row 0.
  HostTensor in_host(DType::f32, 0), out_host(DType::f32, 0);
  Buffer in = filled(64, 1, in_host), out = filled(64, 2, out_host);
  CommandEncoder encoder(device());
  const TensorView input(in.data(), DType::f32, device(), {2, 4}, {std::int64_t{1} << 62, 1});
  const TensorView output(at(out, 16), DType::f32, device(), {2, 4});
  expect_invalid([&] { l2_norm(encoder, input, output); },
                 {"l2_norm: input spans more than", "strides [4611686018427387904, 1]"});
  encoder.wait();
  EXPECT_TRUE(read_back(out).bitwise_equal(out_host));
}

TEST_P(ViewSafety, RejectsOutputWhoseByteExtentOverflows) {
  // Row 1 at (2^62 - 1) * 4 bytes wraps to 4 bytes before the output's start: inside `out`.
  HostTensor in_host(DType::f32, 0), out_host(DType::f32, 0);
  Buffer in = filled(64, 3, in_host), out = filled(64, 4, out_host);
  CommandEncoder encoder(device());
  const TensorView input(in.data(), DType::f32, device(), {2, 4});
  const TensorView output(at(out, 32), DType::f32, device(), {2, 4},
                          {(std::int64_t{1} << 62) - 1, 1});
  expect_invalid([&] { l2_norm(encoder, input, output); },
                 {"l2_norm: output spans more than", "strides [4611686018427387903, 1]"});
  // Every dim counts, not only the leading one, and f16 halves nothing: 2^62 elements of 2 bytes.
  const TensorView deep(at(out, 32), DType::f16, device(), {2, 1, 1, 4},
                        {std::int64_t{1} << 62, 7, 9, 1});
  const TensorView deep_in(in.data(), DType::f16, device(), {2, 1, 1, 4});
  expect_invalid([&] { l2_norm(encoder, deep_in, deep); }, {"l2_norm: output spans more than"});
  encoder.wait();
  EXPECT_TRUE(read_back(out).bitwise_equal(out_host));
}

TEST_P(ViewSafety, RejectsViewThatWrapsTheAddressSpace) {
  // 512 bytes starting 64 bytes below the top of the address space: never dereferenced.
  HostTensor in_host(DType::f32, 0);
  Buffer in = filled(128, 5, in_host);
  CommandEncoder encoder(device());
  auto* top = reinterpret_cast<float*>(std::numeric_limits<std::uintptr_t>::max() - 63);
  const TensorView input(in.data(), DType::f32, device(), {4, 32});
  const TensorView wrapping(top, DType::f32, device(), {4, 32});
  expect_invalid([&] { l2_norm(encoder, input, wrapping); },
                 {"l2_norm: output", "past the end of the address space"});
  expect_invalid([&] { l2_norm(encoder, wrapping, input); },
                 {"l2_norm: input", "past the end of the address space"});
  encoder.wait();
  EXPECT_TRUE(read_back(in).bitwise_equal(in_host));
}

TEST_P(ViewSafety, RejectsNullDataInEveryRole) {
  HostTensor host(DType::f32, 0);
  Buffer buffer = filled(8, 6, host);
  CommandEncoder encoder(device());
  const TensorView valid(buffer.data(), DType::f32, device(), {2, 4});
  const TensorView null(nullptr, DType::f32, device(), {2, 4});
  expect_invalid([&] { l2_norm(encoder, null, valid); },
                 {"l2_norm: input data pointer is null", "[2, 4]"});
  expect_invalid([&] { l2_norm(encoder, valid, null); }, {"l2_norm: output data pointer is null"});
  expect_invalid([&] { l2_norm(encoder, null, null); }, {"l2_norm: input data pointer is null"});
  // An empty batch names no memory, so a null pointer there is fine.
  const TensorView empty(nullptr, DType::f32, device(), {0, 4});
  EXPECT_NO_THROW(l2_norm(encoder, empty, empty));
  encoder.wait();
  EXPECT_TRUE(read_back(buffer).bitwise_equal(host));
}

TEST_P(ViewSafety, BufferCopiesRejectNullHostPointers) {
  HostTensor host(DType::f32, 0);
  Buffer buffer = filled(8, 7, host);
  expect_invalid([&] { buffer.copy_from_host(nullptr, 4); },
                 {"Buffer::copy_from_host: source is null", "4 bytes"});
  expect_invalid([&] { buffer.copy_to_host(nullptr, 32); },
                 {"Buffer::copy_to_host: destination is null", "32 bytes"});
  EXPECT_NO_THROW(buffer.copy_from_host(nullptr, 0));
  EXPECT_NO_THROW(buffer.copy_to_host(nullptr, 0));
  EXPECT_TRUE(read_back(buffer).bitwise_equal(host));
}

// Runs l2_norm(input rows, output rows) over one buffer and checks each output row against the
// reference of its input row (read before the call) and every other element unchanged.
void expect_rows_normalized(const Device& device, Buffer& buffer, const HostTensor& before,
                            const TensorView& input, const TensorView& output,
                            const std::vector<std::int64_t>& input_rows,
                            const std::vector<std::int64_t>& output_rows) {
  CommandEncoder encoder(device);
  l2_norm(encoder, input, output);
  encoder.wait();
  HostTensor after(DType::f32, before.count());
  buffer.copy_to_host(after.data(), after.bytes());
  const std::int64_t dim = input.dim(), rows = std::int64_t(input_rows.size());
  HostTensor gathered_in(DType::f32, std::size_t(rows * dim));
  HostTensor gathered_out(DType::f32, std::size_t(rows * dim));
  std::vector<bool> written(before.count(), false);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t j = 0; j < dim; ++j) {
      const auto in_at = std::size_t(input_rows[std::size_t(r)] + j);
      const auto out_at = std::size_t(output_rows[std::size_t(r)] + j);
      gathered_in.set(std::size_t(r * dim + j), before.get(in_at));
      gathered_out.set(std::size_t(r * dim + j), after.get(out_at));
      written[out_at] = true;
    }
  }
  expect_within_budget(gathered_out, reference_l2_norm(gathered_in, rows, dim, {}), dim, false,
                       "interleaved");
  std::size_t changed = 0;
  for (std::size_t i = 0; i < before.count(); ++i) {
    if (!written[i]) changed += before.get(i) != after.get(i);
  }
  EXPECT_EQ(changed, 0u) << "elements outside the output view changed";
}

TEST_P(ViewSafety, AcceptsInterleavedRowsThatShareNoElement) {
  constexpr std::int64_t dim = 8;
  HostTensor host(DType::f32, 0);
  Buffer buffer = filled(8 * dim, 8, host);
  // Rows 0, 2 in, rows 1, 3 out.
  const TensorView even(buffer.data(), DType::f32, device(), {2, dim}, {2 * dim, 1});
  const TensorView odd(at(buffer, dim), DType::f32, device(), {2, dim}, {2 * dim, 1});
  expect_rows_normalized(device(), buffer, host, even, odd, {0, 2 * dim}, {dim, 3 * dim});

  // Two leading dims: rows 0, 1, 4, 5 in, rows 2, 3, 6, 7 out.
  buffer.copy_from_host(host.data(), host.bytes());
  const TensorView pairs(buffer.data(), DType::f32, device(), {2, 2, dim}, {4 * dim, dim, 1});
  const TensorView other(at(buffer, 2 * dim), DType::f32, device(), {2, 2, dim}, {4 * dim, dim, 1});
  expect_rows_normalized(device(), buffer, host, pairs, other, {0, dim, 4 * dim, 5 * dim},
                         {2 * dim, 3 * dim, 6 * dim, 7 * dim});
}

TEST_P(ViewSafety, RejectsInterleavedRowsThatShareOneElement) {
  constexpr std::int64_t dim = 8;
  HostTensor host(DType::f32, 0);
  Buffer buffer = filled(8 * dim, 9, host);
  CommandEncoder encoder(device());
  const TensorView even(buffer.data(), DType::f32, device(), {2, dim}, {2 * dim, 1});
  // Rows start one element early: the last element of each input row is written.
  const TensorView early(at(buffer, dim - 1), DType::f32, device(), {2, dim}, {2 * dim, 1});
  expect_invalid([&] { l2_norm(encoder, even, early); }, {"l2_norm: output overlaps input"});
  // Only the last output row touches the last input row's first element.
  const TensorView input(buffer.data(), DType::f32, device(), {3, 2}, {20, 1});
  const TensorView output(at(buffer, 3), DType::f32, device(), {3, 2}, {19, 1});
  expect_invalid([&] { l2_norm(encoder, input, output); }, {"l2_norm: output overlaps input"});
  // Same pointer and shape, different strides: rows 1 and 2 of the input are rewritten.
  const TensorView wide(buffer.data(), DType::f32, device(), {3, dim}, {2 * dim, 1});
  const TensorView packed(buffer.data(), DType::f32, device(), {3, dim});
  expect_invalid([&] { l2_norm(encoder, packed, wide); }, {"l2_norm: output overlaps input"});
  encoder.wait();
  HostTensor after(DType::f32, host.count());
  buffer.copy_to_host(after.data(), after.bytes());
  EXPECT_TRUE(after.bitwise_equal(host));
}

TEST_P(ViewSafety, OutputRowsFollowTheDocumentedStrideOrderRule) {
  // Rows at 0, 4, 8, 6, 10, 14 (dim 2) share nothing, but stride 6 does not step past the 10
  // elements the stride-4 dim and the row span: the rule in include/l2norm/ops.hpp refuses it.
  HostTensor host(DType::f32, 0);
  Buffer in = filled(12, 12, host), out = filled(16, 13, host);
  CommandEncoder encoder(device());
  const TensorView input(in.data(), DType::f32, device(), {2, 3, 2});
  const TensorView output(out.data(), DType::f32, device(), {2, 3, 2}, {6, 4, 1});
  expect_invalid(
      [&] { l2_norm(encoder, input, output); },
      {"l2_norm: output rows overlap each other", "strides [6, 4, 1]", "here stride 6 < 10"});
}

TEST_P(ViewSafety, InPlaceIgnoresStridesOfSizeOneDims) {
  constexpr std::int64_t dim = 8;
  HostTensor host(DType::f32, 0);
  Buffer buffer = filled(4 * dim, 10, host);
  const TensorView a(buffer.data(), DType::f32, device(), {1, 4, dim}, {999, dim, 1});
  const TensorView b(buffer.data(), DType::f32, device(), {1, 4, dim}, {5, dim, 1});
  expect_rows_normalized(device(), buffer, host, a, b, {0, dim, 2 * dim, 3 * dim},
                         {0, dim, 2 * dim, 3 * dim});
}

TEST_P(ViewSafety, ExactOverlapCheckStaysFastForMillionsOfRows) {
  // Every other element in, the ones between out: 2^20 rows each, all interleaved.
  constexpr std::int64_t rows = std::int64_t{1} << 20;
  HostTensor host(DType::f32, 0);
  Buffer buffer = filled(2 * rows, 11, host);
  const TensorView even(buffer.data(), DType::f32, device(), {rows, 1}, {2, 1});
  const TensorView odd(at(buffer, 1), DType::f32, device(), {rows, 1}, {2, 1});
  CommandEncoder encoder(device());
  const auto start = std::chrono::steady_clock::now();
  l2_norm(encoder, even, odd);
  encoder.wait();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took.count(), 2.0) << "validation or dispatch of 2^20 interleaved rows is slow";
  HostTensor after(DType::f32, host.count());
  buffer.copy_to_host(after.data(), after.bytes());
  std::size_t wrong = 0;
  for (std::size_t r = 0; r < std::size_t(rows); ++r) {
    const float x = host.get(2 * r), y = after.get(2 * r + 1);
    const double expected = double(x) / std::sqrt(double(x) * double(x) + 1e-6);
    wrong += after.get(2 * r) != x || std::abs(y - expected) > 1e-6;
  }
  EXPECT_EQ(wrong, 0u);
  // Shifting the output onto the input's elements makes every row overlap.
  const TensorView shifted(at(buffer, 2), DType::f32, device(), {rows - 1, 1}, {2, 1});
  const TensorView first(buffer.data(), DType::f32, device(), {rows - 1, 1}, {2, 1});
  expect_invalid([&] { l2_norm(encoder, first, shifted); }, {"l2_norm: output overlaps input"});
}

INSTANTIATE_TEST_SUITE_P(Backends, ViewSafety, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

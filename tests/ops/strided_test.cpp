// Strided views (row slices of a packed projection, permuted heads, storage offsets) and
// misaligned pointers: results must equal the contiguous reference, and memory outside the output
// view must be untouched.
#include <gtest/gtest.h>

#include <vector>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

class StridedViews : public OnEveryBackend {
 protected:
  // Runs l2_norm from `in` to `out` views over storages of `storage` elements (the same storage
  // when in_place) and checks every row against the reference and every other element unchanged.
  void check(DType dtype, std::int64_t storage, const std::vector<std::int64_t>& shape,
             const StorageView& in, const StorageView& out, bool in_place,
             const L2NormOptions& options, const std::string& what) {
    const HostTensor input_storage = random_tensor(dtype, std::size_t(storage), 17);
    HostTensor output_storage =
        in_place ? input_storage : random_tensor(dtype, std::size_t(storage), 18);
    const HostTensor output_before = output_storage;

    Buffer input_buffer(device(), dtype, storage);
    input_buffer.copy_from_host(input_storage.data(), input_storage.bytes());
    Buffer output_buffer(device(), dtype, in_place ? 0 : storage);
    if (!in_place) output_buffer.copy_from_host(output_storage.data(), output_storage.bytes());
    Buffer& target = in_place ? input_buffer : output_buffer;

    const std::size_t esize = dtype_size(dtype);
    auto* in_base = static_cast<std::byte*>(input_buffer.data()) + in.offset * std::int64_t(esize);
    auto* out_base = static_cast<std::byte*>(target.data()) + out.offset * std::int64_t(esize);
    const TensorView in_view(in_base, dtype, device(), shape, in.strides);
    const TensorView out_view(out_base, dtype, device(), shape, out.strides);
    CommandEncoder encoder(device());
    l2_norm(encoder, in_view, out_view, options);
    encoder.wait();
    target.copy_to_host(output_storage.data(), output_storage.bytes());

    const std::int64_t rows = in_view.rows(), dim = in_view.dim();
    const GatheredRows gathered = gather_rows(input_storage, in, output_storage, out, shape);
    expect_within_budget(gathered.output, reference_l2_norm(gathered.input, rows, dim, options),
                         dim, options.scale != 1.0f, what.c_str());
    EXPECT_EQ(
        count_clobbered(in_place ? input_storage : output_before, output_storage, gathered.written),
        0u)
        << what << ": elements outside the output view changed";
  }
};

TEST_P(StridedViews, QAndKSlicesOfAPackedProjection) {
  // qkv projection [T, 3, H, D]: q = [:, 0], k = [:, 1] seen as [T, H, D] with row stride D and
  // token stride 3*H*D. q goes to a contiguous output, k is normalized in place.
  constexpr std::int64_t T = 37, H = 4, D = 128;
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    const std::vector<std::int64_t> shape{T, H, D};
    check(dtype, T * 3 * H * D, shape, {0, {3 * H * D, D, 1}}, {0, {H * D, D, 1}}, false,
          {.scale = 0.0883883476f}, std::string("q ") + std::string(dtype_name(dtype)));
    check(dtype, T * 3 * H * D, shape, {H * D, {3 * H * D, D, 1}}, {H * D, {3 * H * D, D, 1}}, true,
          {}, std::string("k in place ") + std::string(dtype_name(dtype)));
  }
}

TEST_P(StridedViews, PermutedHeadsRankFour) {
  // Storage [B, H, T, D] viewed as [B, T, H, D]: no two leading dims merge (outer rank 3).
  constexpr std::int64_t B = 2, T = 5, H = 3, D = 96;
  const std::vector<std::int64_t> shape{B, T, H, D};
  const std::vector<std::int64_t> strides{H * T * D, D, T * D, 1};
  check(DType::bf16, B * H * T * D, shape, {0, strides}, {0, strides}, false, {}, "rank 4 bf16");
  check(DType::f32, B * H * T * D, shape, {0, strides}, {0, {T * H * D, H * D, D, 1}}, false,
        {.eps_mode = EpsMode::clamp}, "rank 4 f32 to contiguous");
}

TEST_P(StridedViews, RowStrideNotAMultipleOfTheVectorWidth) {
  for (const std::int64_t dim : {std::int64_t{8}, std::int64_t{128}, std::int64_t{1000}}) {
    const std::int64_t rows = 50, stride = dim + 3;
    check(DType::f32, rows * stride, {rows, dim}, {0, {stride, 1}}, {0, {stride, 1}}, false, {},
          "row stride dim+3, dim " + std::to_string(dim));
  }
}

TEST_P(StridedViews, MisalignedPointers) {
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    for (std::int64_t offset = 1; offset <= 7; ++offset) {
      for (const std::int64_t dim : {std::int64_t{7}, std::int64_t{128}, std::int64_t{4100}}) {
        const std::int64_t rows = 9;
        check(dtype, rows * dim + 8, {rows, dim}, {offset, {dim, 1}}, {8 - offset, {dim, 1}}, false,
              {},
              std::string(dtype_name(dtype)) + " offset " + std::to_string(offset) + " dim " +
                  std::to_string(dim));
        check(dtype, rows * dim + 8, {rows, dim}, {offset, {dim, 1}}, {offset, {dim, 1}}, true, {},
              "in place offset " + std::to_string(offset));
      }
    }
  }
}

TEST_P(StridedViews, BroadcastInputRow) {
  // One input row read for every output row (stride 0) is allowed; output rows must be distinct.
  constexpr std::int64_t rows = 6, dim = 64;
  check(DType::f32, rows * dim, {rows, dim}, {0, {0, 1}}, {0, {dim, 1}}, false, {}, "broadcast");
}

TEST_P(StridedViews, EmptyBatchIsANoOp) {
  Buffer buffer(device(), DType::f32, 8);
  CommandEncoder encoder(device());
  const TensorView empty(buffer.data(), DType::f32, device(), {0, 8});
  l2_norm(encoder, empty, empty);
  EXPECT_TRUE(encoder.recorded().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StridedViews, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing

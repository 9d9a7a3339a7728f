#include <gtest/gtest.h>

#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

TEST(TensorView, ContiguousStridesRowsAndDim) {
  float storage[24];
  const TensorView view(storage, DType::f32, Device::cpu(), {2, 3, 4});
  EXPECT_EQ(view.rank(), 3);
  EXPECT_EQ(view.stride(0), 12);
  EXPECT_EQ(view.stride(1), 4);
  EXPECT_EQ(view.stride(2), 1);
  EXPECT_EQ(view.rows(), 6);
  EXPECT_EQ(view.dim(), 4);
  EXPECT_EQ(view.numel(), 24);
  EXPECT_TRUE(view.is_contiguous());
  const TensorView sliced(storage, DType::f32, Device::cpu(), {2, 4}, {12, 1});
  EXPECT_FALSE(sliced.is_contiguous());
  EXPECT_EQ(sliced.rows(), 2);
}

TEST(TensorView, RejectsBadRanksSizesAndStrideCounts) {
  float storage[4];
  EXPECT_THROW(TensorView(storage, DType::f32, Device::cpu(), {1, 1, 1, 1, 4}), Error);
  EXPECT_THROW(TensorView(storage, DType::f32, Device::cpu(), {-1, 4}), Error);
  EXPECT_THROW(TensorView(storage, DType::f32, Device::cpu(), {1, 4}, {4}), Error);
  try {
    TensorView(storage, DType::f32, Device::cpu(), std::span<const std::int64_t>{});
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_STREQ(error.what(), "TensorView: rank 0 is not supported (1..4)");
  }
  EXPECT_THROW(TensorView(storage, DType::f32, Device::cpu(),
                          {std::int64_t{1} << 40, std::int64_t{1} << 40}),
               Error);
}

TEST(Buffer, AllocatesCopiesAndReshapes) {
  Buffer buffer(Device::cpu(), DType::bf16, 10);
  EXPECT_EQ(buffer.bytes(), 20u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffer.data()) % 64, 0u);
  const std::uint16_t values[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  buffer.copy_from_host(values, sizeof values);
  std::uint16_t back[10] = {};
  buffer.copy_to_host(back, sizeof back);
  EXPECT_EQ(back[9], 10);
  EXPECT_EQ(buffer.view({2, 5}).rows(), 2);
  EXPECT_THROW(buffer.view({3, 5}), Error);
  EXPECT_THROW(buffer.copy_from_host(values, 22), Error);
  Buffer moved = std::move(buffer);
  EXPECT_EQ(moved.count(), 10);
  EXPECT_EQ(buffer.data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
}

TEST(Buffer, RejectsNegativeAndHugeCounts) {
  EXPECT_THROW(Buffer(Device::cpu(), DType::f32, -1), Error);
  try {
    Buffer(Device::cpu(), DType::f32, std::int64_t{1} << 61);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_TRUE(error.code() == ErrorCode::out_of_memory ||
                error.code() == ErrorCode::invalid_argument)
        << error.what();
  }
}

}  // namespace
}  // namespace l2norm

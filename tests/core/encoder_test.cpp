// A moved-from CommandEncoder has no device queue: every call on it is an invalid_argument Error
// that names the call, never a crash.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "l2norm/l2norm.hpp"

namespace l2norm {
namespace {

template <typename Call>
void expect_moved_from(Call&& call, const char* member) {
  try {
    call();
    ADD_FAILURE() << "no error thrown by " << member;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << error.what();
    EXPECT_NE(std::string(error.what()).find("the encoder was moved from"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find(member), std::string::npos) << error.what();
  }
}

TEST(CommandEncoder, EveryCallOnAMovedFromEncoderIsAnError) {
  CommandEncoder encoder(Device::cpu());
  CommandEncoder moved = std::move(encoder);
  Buffer in(Device::cpu(), DType::f32, 8), out(Device::cpu(), DType::f32, 8);
  // NOLINTBEGIN(bugprone-use-after-move): a moved-from encoder is what is under test.
  expect_moved_from([&] { l2_norm(encoder, in, out, 2, 4); }, "CommandEncoder::");
  expect_moved_from(
      [&] {
        l2_norm(encoder, in.view({2, 4}), out.view({2, 4}));
      },
      "CommandEncoder::");
  expect_moved_from([&] { encoder.wait(); }, "wait");
  expect_moved_from([&] { encoder.commit(); }, "commit");
  expect_moved_from([&] { (void)encoder.recorded(); }, "recorded");
  expect_moved_from([&] { (void)encoder.device(); }, "device");
  expect_moved_from([&] { (void)encoder.cuda_stream(); }, "cuda_stream");
  expect_moved_from([&] { encoder.set_launch_overlap(false); }, "set_launch_overlap");
  expect_moved_from([&] { (void)encoder.launch_overlap(); }, "launch_overlap");
  // Assigning a live encoder makes it usable again.
  encoder = std::move(moved);
  EXPECT_NO_THROW(l2_norm(encoder, in, in, 2, 4));
  EXPECT_EQ(encoder.commit(), 1u);
  // NOLINTEND(bugprone-use-after-move)
}

}  // namespace
}  // namespace l2norm

#include "atomic_file.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include "l2norm/error.hpp"
#include "npy_bytes.hpp"
#include "temp_folder.hpp"

namespace l2norm::io {
namespace {

using testing::as_bytes;
using testing::read_file;
using testing::TempFolder;
using testing::write_file;

TEST(AtomicOutputFile, TemporaryLivesBesideTheTarget) {
  const TempFolder folder;
  AtomicOutputFile file(folder.file("out.npy"));
  const std::string prefix = folder.file("out.npy") + ".tmp." + std::to_string(::getpid()) + ".";
  EXPECT_EQ(file.temporary_path().rfind(prefix, 0), 0u) << file.temporary_path();
  EXPECT_EQ(folder.entries().size(), 1u);
}

TEST(AtomicOutputFile, CommitRenamesIntoPlace) {
  const TempFolder folder;
  const std::string target = folder.file("out.npy");
  {
    AtomicOutputFile file(target);
    file.write(as_bytes("hello "));
    file.write(as_bytes("world"));
    EXPECT_EQ(file.bytes_written(), 11u);
    file.commit();
  }
  EXPECT_EQ(read_file(target), as_bytes("hello world"));
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"out.npy"});
}

TEST(AtomicOutputFile, UncommittedFileLeavesNothing) {
  const TempFolder folder;
  {
    AtomicOutputFile file(folder.file("out.npy"));
    file.write(as_bytes("partial"));
  }
  EXPECT_TRUE(folder.entries().empty());
}

TEST(AtomicOutputFile, ExistingTargetIsUntouchedUntilCommit) {
  const TempFolder folder;
  const std::string target = folder.file("out.npy");
  write_file(target, as_bytes("old contents"));
  {
    AtomicOutputFile file(target);
    file.write(as_bytes("new"));
    EXPECT_EQ(read_file(target), as_bytes("old contents"));
  }
  EXPECT_EQ(read_file(target), as_bytes("old contents"));
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"out.npy"});
  {
    AtomicOutputFile file(target);
    file.write(as_bytes("new"));
    file.commit();
  }
  EXPECT_EQ(read_file(target), as_bytes("new"));
}

TEST(AtomicOutputFile, MissingFolderIsAnIoError) {
  const TempFolder folder;
  try {
    AtomicOutputFile file(folder.file("no/such/folder/out.npy"));
    FAIL() << "created a file in a missing folder";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::io);
    EXPECT_NE(std::string(error.what()).find("out.npy"), std::string::npos) << error.what();
  }
}

// A file-size limit makes write() fail part way (EFBIG), as a full disk (ENOSPC) does.
TEST(AtomicOutputFile, ShortWriteIsAnErrorAndLeavesNothing) {
  const TempFolder folder;
  const std::string target = folder.file("out.npy");
  write_file(target, as_bytes("old"));
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit previous_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &previous_limit), 0);
  rlimit small_limit = previous_limit;
  small_limit.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small_limit), 0);
  try {
    AtomicOutputFile file(target);
    file.write(std::vector<std::byte>(1 << 20, std::byte{7}));
    ADD_FAILURE() << "a write past the file-size limit succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::io);
    EXPECT_NE(std::string(error.what()).find("write failed after 65536 bytes"), std::string::npos)
        << error.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &previous_limit);
  std::signal(SIGXFSZ, previous_handler);
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"out.npy"});
  EXPECT_EQ(read_file(target), as_bytes("old"));
}

}  // namespace
}  // namespace l2norm::io

#include "atomic_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
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

using Temporary = AtomicOutputFile::Temporary;

// True when `folder`'s file system supports O_TMPFILE, which the default mode then uses.
bool supports_unnamed(const TempFolder& folder) {
  const int fd = ::open(folder.path().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

TEST(AtomicOutputFile, TemporaryLivesBesideTheTarget) {
  const TempFolder folder;
  AtomicOutputFile file(folder.file("out.npy"), Temporary::named);
  const std::string prefix = folder.file("out.npy") + ".tmp." + std::to_string(::getpid()) + ".";
  EXPECT_EQ(file.temporary_path().rfind(prefix, 0), 0u) << file.temporary_path();
  EXPECT_EQ(folder.entries().size(), 1u);
}

// An unnamed (O_TMPFILE) output has no folder entry until commit(), so even SIGKILL leaves none.
TEST(AtomicOutputFile, UnnamedTemporaryIsInvisibleUntilCommit) {
  const TempFolder folder;
  if (!supports_unnamed(folder)) GTEST_SKIP() << "no O_TMPFILE on " << folder.path();
  const std::string target = folder.file("out.npy");
  for (const bool existing : {false, true}) {
    if (existing) write_file(target, as_bytes("old"));
    AtomicOutputFile file(target);
    EXPECT_TRUE(file.is_unnamed());
    EXPECT_TRUE(file.temporary_path().empty());
    file.write(as_bytes("new contents"));
    EXPECT_EQ(folder.entries(),
              existing ? std::vector<std::string>{"out.npy"} : std::vector<std::string>{});
    file.commit();
    EXPECT_EQ(read_file(target), as_bytes("new contents"));
    EXPECT_EQ(folder.entries(), std::vector<std::string>{"out.npy"});
  }
}

class AtomicOutputFileBothKinds : public ::testing::TestWithParam<Temporary> {};

// NAME_MAX is 255: a target with a 251-byte base name must still get a temporary that fits.
TEST_P(AtomicOutputFileBothKinds, LongTargetNameGetsATemporaryThatFits) {
  const TempFolder folder;
  const std::string target = folder.file(std::string(247, 'n') + ".npy");
  for (const bool existing : {false, true}) {
    if (existing) write_file(target, as_bytes("old"));
    AtomicOutputFile file(target, GetParam());
    file.write(as_bytes("long"));
    file.commit();
    EXPECT_EQ(read_file(target), as_bytes("long"));
    EXPECT_EQ(folder.entries().size(), 1u);
  }
  // Multi-byte UTF-8 characters are never cut in half.
  const std::string name =
      temporary_name_beside("/d/" + std::string(250, 'a') + "\xc3\xa9\xc3\xa9", "123.abcdefgh");
  EXPECT_LE(name.size() - 3, 255u);
  EXPECT_NE(static_cast<unsigned char>(name[name.find(".tmp.") - 1]), 0xc3u) << name;
}

TEST_P(AtomicOutputFileBothKinds, DirectoryTargetIsRefusedAtOnce) {
  const TempFolder folder;
  std::filesystem::create_directory(folder.file("out.npy"));
  try {
    AtomicOutputFile file(folder.file("out.npy"), GetParam());
    FAIL() << "accepted a directory as the target";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("is a directory"), std::string::npos) << error.what();
  }
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"out.npy"});
}

TEST_P(AtomicOutputFileBothKinds, ReplacedTargetKeepsItsMode) {
  const TempFolder folder;
  const std::string target = folder.file("out.npy");
  write_file(target, as_bytes("old"));
  ASSERT_EQ(::chmod(target.c_str(), 0440), 0);
  struct stat before {};
  ASSERT_EQ(::stat(target.c_str(), &before), 0);
  {
    AtomicOutputFile file(target, GetParam());
    file.write(as_bytes("new"));
    file.commit();
  }
  struct stat after {};
  ASSERT_EQ(::stat(target.c_str(), &after), 0);
  EXPECT_EQ(after.st_mode & 07777, 0440u);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_gid, before.st_gid);
  EXPECT_NE(after.st_ino, before.st_ino);  // replaced, not rewritten in place
  EXPECT_EQ(read_file(target), as_bytes("new"));
}

TEST_P(AtomicOutputFileBothKinds, UncommittedFileLeavesNothing) {
  const TempFolder folder;
  {
    AtomicOutputFile file(folder.file("out.npy"), GetParam());
    file.write(as_bytes("partial"));
  }
  EXPECT_TRUE(folder.entries().empty());
}

INSTANTIATE_TEST_SUITE_P(Kinds, AtomicOutputFileBothKinds,
                         ::testing::Values(Temporary::named, Temporary::unnamed_if_supported));

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

#include "atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "l2norm/error.hpp"

namespace l2norm::io {

namespace {

std::string parent_folder(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string random_suffix() {
  std::random_device entropy;
  std::uniform_int_distribution<unsigned> digit(0, 35);
  std::string suffix;
  for (int i = 0; i < 8; ++i)
    suffix.push_back("0123456789abcdefghijklmnopqrstuvwxyz"[digit(entropy)]);
  return suffix;
}

}  // namespace

AtomicOutputFile::AtomicOutputFile(std::string target_path) : target_path_(std::move(target_path)) {
  const std::string stem = target_path_ + ".tmp." + std::to_string(::getpid()) + ".";
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    temporary_path_ = stem + random_suffix();
    fd_ = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    const int error_number = errno;
    throw Error(ErrorCode::io, target_path_ + ": cannot create a temporary file " +
                                   temporary_path_ + " beside it: " + std::strerror(error_number));
  }
}

AtomicOutputFile::~AtomicOutputFile() {
  discard();
}

void AtomicOutputFile::discard() noexcept {
  if (committed_) return;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temporary_path_.empty()) {
    ::unlink(temporary_path_.c_str());
    temporary_path_.clear();
  }
}

void AtomicOutputFile::write(std::span<const std::byte> bytes) {
  if (fd_ < 0) throw Error(ErrorCode::io, target_path_ + ": write after the file was closed");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const std::size_t want = std::min<std::size_t>(bytes.size() - done, std::size_t{1} << 30);
    const ssize_t wrote = ::write(fd_, bytes.data() + done, want);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      const int error_number = errno;
      throw Error(ErrorCode::io, target_path_ + ": write failed after " +
                                     std::to_string(bytes_written_ + done) +
                                     " bytes: " + std::strerror(error_number));
    }
    if (wrote == 0) {
      throw Error(ErrorCode::io, target_path_ + ": short write after " +
                                     std::to_string(bytes_written_ + done) + " bytes");
    }
    done += static_cast<std::size_t>(wrote);
  }
  bytes_written_ += done;
}

void AtomicOutputFile::commit() {
  if (committed_) return;
  const auto fail = [this](const char* step) {
    const int error_number = errno;
    const std::string message = target_path_ + ": " + step + ": " + std::strerror(error_number);
    discard();
    throw Error(ErrorCode::io, message);
  };
  if (fd_ < 0) throw Error(ErrorCode::io, target_path_ + ": commit after the file was discarded");
  if (::fsync(fd_) != 0) fail("fsync of the temporary file failed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close of the temporary file failed");
  if (::rename(temporary_path_.c_str(), target_path_.c_str()) != 0) {
    fail("cannot rename the temporary file into place");
  }
  committed_ = true;
  // The rename is durable only once the folder entry is on disk; failing to sync the folder
  // cannot undo the (already visible) result, so it is not an error.
  const int folder =
      ::open(parent_folder(target_path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder >= 0) {
    ::fsync(folder);
    ::close(folder);
  }
}

}  // namespace l2norm::io

#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
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

std::string unique_tag() {
  return std::to_string(::getpid()) + "." + random_suffix();
}

// The path through which linkat(2) reaches an open file that has no name.
std::string descriptor_path(int fd) {
  return "/proc/self/fd/" + std::to_string(fd);
}

Error io_error(const std::string& target, const std::string& what, int error_number) {
  return Error(ErrorCode::io, target + ": " + what + ": " + std::strerror(error_number));
}

// Refuses targets that rename(2) cannot or should not replace, before any work is done. A missing
// target, a regular file and a symbolic link (which is replaced, not followed) are accepted.
void check_target(const std::string& target) {
  struct stat info {};
  if (::lstat(target.c_str(), &info) != 0) return;
  if (S_ISDIR(info.st_mode)) {
    throw Error(ErrorCode::invalid_argument,
                target + ": is a directory; name the output file, e.g. " +
                    (target.ends_with('/') ? target : target + "/") + "out.npy");
  }
  if (!S_ISREG(info.st_mode) && !S_ISLNK(info.st_mode)) {
    throw Error(ErrorCode::invalid_argument,
                target +
                    ": exists and is not a regular file (a FIFO, socket or device); the "
                    "output must be a regular file");
  }
}

}  // namespace

std::string temporary_name_beside(const std::string& target_path, const std::string& tag) {
  const std::size_t slash = target_path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "" : target_path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? target_path : target_path.substr(slash + 1);
  const std::string suffix = ".tmp." + tag;
  const std::size_t room = NAME_MAX > suffix.size() ? NAME_MAX - suffix.size() : 0;
  if (base.size() > room) {
    std::size_t keep = room;
    // Cut before a UTF-8 continuation byte's lead, so the shortened name stays valid UTF-8.
    while (keep > 0 && (static_cast<unsigned char>(base[keep]) & 0xC0) == 0x80) --keep;
    base.resize(keep);
  }
  return folder + base + suffix;
}

AtomicOutputFile::AtomicOutputFile(std::string target_path, Temporary temporary)
    : target_path_(std::move(target_path)) {
  check_target(target_path_);
  if (temporary == Temporary::unnamed_if_supported) {
    fd_ = ::open(parent_folder(target_path_).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    // Linking the file into place at commit() goes through /proc; without it, use a named file.
    if (fd_ >= 0 && ::access(descriptor_path(fd_).c_str(), F_OK) == 0) {
      unnamed_ = true;
      return;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  open_named();
}

void AtomicOutputFile::open_named() {
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    temporary_path_ = temporary_name_beside(target_path_, unique_tag());
    fd_ = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    const int error_number = errno;
    const std::string attempted = temporary_path_;
    temporary_path_.clear();
    throw io_error(target_path_, "cannot create a temporary file " + attempted + " beside it",
                   error_number);
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
      throw io_error(target_path_,
                     "write failed after " + std::to_string(bytes_written_ + done) + " bytes",
                     error_number);
    }
    if (wrote == 0) {
      throw Error(ErrorCode::io, target_path_ + ": short write after " +
                                     std::to_string(bytes_written_ + done) + " bytes");
    }
    done += static_cast<std::size_t>(wrote);
  }
#if defined(__linux__)
  // The disk starts writing these bytes now rather than at commit()'s fsync, so it works while
  // later chunks are read and normalized and commit() waits for the tail only. Advisory: a
  // failure here is no error (commit()'s fsync reports what the disk refused).
  if (done > 0) {
    ::sync_file_range(fd_, static_cast<off_t>(bytes_written_), static_cast<off_t>(done),
                      SYNC_FILE_RANGE_WRITE);
  }
#endif
  bytes_written_ += done;
}

// An existing regular target keeps its permission bits, and its owner and group where this
// process may set them (a failed chown is not an error: the file then belongs to this user).
void AtomicOutputFile::keep_target_attributes() const {
  struct stat info {};
  if (::lstat(target_path_.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return;
  if (info.st_uid != ::geteuid() || info.st_gid != ::getegid()) {
    if (::fchown(fd_, info.st_uid, info.st_gid) != 0) {
      [[maybe_unused]] const int ignored = ::fchown(fd_, static_cast<uid_t>(-1), info.st_gid);
    }
  }
  ::fchmod(fd_, info.st_mode & 0777);
}

void AtomicOutputFile::link_unnamed_into_place() {
  const std::string source = descriptor_path(fd_);
  // A missing target takes the file's first name directly: nothing but the complete file is ever
  // visible, whatever ends the process.
  if (::linkat(AT_FDCWD, source.c_str(), AT_FDCWD, target_path_.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    return;
  }
  if (errno != EEXIST) throw io_error(target_path_, "cannot link the output into place", errno);
  // Replacing an existing target atomically needs a name to rename(2) from.
  for (int attempt = 0; attempt < 16; ++attempt) {
    temporary_path_ = temporary_name_beside(target_path_, unique_tag());
    if (::linkat(AT_FDCWD, source.c_str(), AT_FDCWD, temporary_path_.c_str(), AT_SYMLINK_FOLLOW) ==
        0) {
      if (::rename(temporary_path_.c_str(), target_path_.c_str()) != 0) {
        throw io_error(target_path_, "cannot rename the temporary file into place", errno);
      }
      temporary_path_.clear();
      return;
    }
    if (errno != EEXIST) break;
  }
  const int error_number = errno;
  temporary_path_.clear();
  throw io_error(target_path_, "cannot link the output under a temporary name", error_number);
}

void AtomicOutputFile::commit() {
  if (committed_) return;
  if (fd_ < 0) throw Error(ErrorCode::io, target_path_ + ": commit after the file was discarded");
  try {
    if (::fsync(fd_) != 0) throw io_error(target_path_, "fsync of the output failed", errno);
    keep_target_attributes();
    if (unnamed_) {
      link_unnamed_into_place();
      // The data is on disk (fsync) and already visible; close cannot fail in a way that matters.
      ::close(fd_);
      fd_ = -1;
    } else {
      const int fd = fd_;
      fd_ = -1;
      if (::close(fd) != 0)
        throw io_error(target_path_, "close of the temporary file failed", errno);
      if (::rename(temporary_path_.c_str(), target_path_.c_str()) != 0) {
        throw io_error(target_path_, "cannot rename the temporary file into place", errno);
      }
      temporary_path_.clear();
    }
  } catch (...) {
    discard();
    throw;
  }
  committed_ = true;
  // The new name is durable only once the folder entry is on disk; failing to sync the folder
  // cannot undo the (already visible) result, so it is not an error.
  const int folder =
      ::open(parent_folder(target_path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder >= 0) {
    ::fsync(folder);
    ::close(folder);
  }
}

}  // namespace l2norm::io

#include "byte_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "l2norm/error.hpp"

namespace l2norm::io {

namespace {

Error io_error(const std::string& name, const std::string& what, int error_number) {
  return Error(ErrorCode::io, name + ": " + what + ": " + std::strerror(error_number));
}

}  // namespace

FileSource::FileSource(std::string path) : path_(std::move(path)) {
  // O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO; a regular file
  // ignores it, and it is cleared once the file is known to be regular.
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) throw io_error(path_, "cannot open for reading", errno);
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    const int error_number = errno;
    ::close(fd_);
    throw io_error(path_, "cannot stat", error_number);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw Error(ErrorCode::io, path_ + (S_ISDIR(info.st_mode) ? ": is a directory, not a file"
                                                              : ": not a regular file (a FIFO, "
                                                                "socket or device cannot be read "
                                                                "by offset)"));
  }
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int error_number = errno;
    ::close(fd_);
    throw io_error(path_, "cannot clear O_NONBLOCK", error_number);
  }
  size_ = static_cast<std::uint64_t>(info.st_size);
}

FileSource::~FileSource() {
  ::close(fd_);
}

void FileSource::read_at(std::uint64_t offset, std::span<std::byte> destination) const {
  std::size_t done = 0;
  while (done < destination.size()) {
    const std::size_t want = std::min<std::size_t>(destination.size() - done, std::size_t{1} << 30);
    const std::uint64_t position = offset + done;
    if (position > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
      throw Error(ErrorCode::io, path_ + ": read offset " + std::to_string(position) +
                                     " is past the largest file offset");
    }
    const ssize_t got = ::pread(fd_, destination.data() + done, want, static_cast<off_t>(position));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw io_error(path_, "read failed at byte " + std::to_string(position), errno);
    }
    if (got == 0) {
      throw Error(ErrorCode::io, path_ + ": file ended at byte " + std::to_string(position) +
                                     " while " + std::to_string(destination.size() - done) +
                                     " more bytes were expected (did it change while being read?)");
    }
    done += static_cast<std::size_t>(got);
  }
}

void MemorySource::read_at(std::uint64_t offset, std::span<std::byte> destination) const {
  if (offset > bytes_.size() || destination.size() > bytes_.size() - offset) {
    throw Error(ErrorCode::io, name_ + ": read of " + std::to_string(destination.size()) +
                                   " bytes at offset " + std::to_string(offset) +
                                   " is past the end (" + std::to_string(bytes_.size()) +
                                   " bytes)");
  }
  std::memcpy(destination.data(), bytes_.data() + offset, destination.size());
}

}  // namespace l2norm::io

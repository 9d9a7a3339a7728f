// Random-access byte sources the file readers parse from: a file (read with pread, so several
// threads may read at once) or a block of memory (used by the fuzzers and the parser tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace l2norm::io {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The name error messages use ("<name>: <what>"): the path for files.
  virtual const std::string& name() const noexcept = 0;
  virtual std::uint64_t size() const noexcept = 0;
  // Fills `destination` with the bytes at `offset`. Throws Error(io) when the source cannot
  // supply them all (a read error, or a file that shrank after it was opened).
  virtual void read_at(std::uint64_t offset, std::span<std::byte> destination) const = 0;
};

class FileSource final : public ByteSource {
 public:
  // Opens `path` read-only. Throws Error(io) naming the path and the reason.
  explicit FileSource(std::string path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  const std::string& name() const noexcept override { return path_; }
  std::uint64_t size() const noexcept override { return size_; }
  void read_at(std::uint64_t offset, std::span<std::byte> destination) const override;
  int descriptor() const noexcept { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::string name, std::span<const std::byte> bytes)
      : name_(std::move(name)), bytes_(bytes) {}

  const std::string& name() const noexcept override { return name_; }
  std::uint64_t size() const noexcept override { return bytes_.size(); }
  void read_at(std::uint64_t offset, std::span<std::byte> destination) const override;

 private:
  std::string name_;
  std::span<const std::byte> bytes_;
};

}  // namespace l2norm::io

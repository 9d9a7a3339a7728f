// An output file that appears only when complete. Bytes go to a temporary file beside the target
// (same folder, so the final rename(2) stays within one file system):
// "<target>.tmp.<pid>.<random>". commit() flushes it to disk (fsync, checked close), renames it
// over the target and syncs the folder. Destroying an uncommitted file removes the temporary, so a
// failure at any point leaves neither the target nor a temporary behind, and a pre-existing target
// untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace l2norm::io {

class AtomicOutputFile {
 public:
  // Creates the temporary file. Throws Error(io) naming the target and the reason.
  explicit AtomicOutputFile(std::string target_path);
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  // Appends all of `bytes`. A short write (disk full, file size limit) is Error(io).
  void write(std::span<const std::byte> bytes);
  // Makes the file visible under the target name. Throws Error(io) and removes the temporary if
  // any step fails; the target is then as it was.
  void commit();
  // Removes the temporary now (the destructor does the same).
  void discard() noexcept;

  const std::string& target_path() const noexcept { return target_path_; }
  const std::string& temporary_path() const noexcept { return temporary_path_; }
  std::uint64_t bytes_written() const noexcept { return bytes_written_; }

 private:
  std::string target_path_;
  std::string temporary_path_;
  int fd_ = -1;
  bool committed_ = false;
  std::uint64_t bytes_written_ = 0;
};

}  // namespace l2norm::io

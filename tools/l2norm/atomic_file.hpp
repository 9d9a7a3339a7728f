// An output file that appears only when complete.
//
// Where OUT's file system supports it (Linux O_TMPFILE: ext4, xfs, btrfs, tmpfs), the bytes go to
// an unnamed file in OUT's folder. It has no directory entry, so whatever ends the process
// (SIGKILL and power loss included) leaves nothing behind until commit() links it into place.
// commit() flushes it (fsync), then links it under OUT's name when OUT does not exist (one
// linkat, nothing is ever visible but the complete file), or, to replace an existing OUT
// atomically, links it under a temporary name and renames that over OUT: a SIGKILL between those
// two system calls is the one moment a temporary file can remain.
//
// Elsewhere the bytes go to a named temporary "<OUT>.tmp.<pid>.<random>" beside OUT (the base name
// shortened so that the temporary's name fits NAME_MAX), renamed over OUT by commit(). Destroying
// an uncommitted file removes it, so a failure or a caught signal leaves neither OUT nor a
// temporary behind and a pre-existing OUT untouched; a SIGKILL leaves the named temporary.
//
// A replaced OUT keeps its permission bits, and its owner and group where the process may set
// them. OUT naming a directory, or anything but a regular file or a symbolic link, is refused by
// the constructor, before any output is produced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace l2norm::io {

class AtomicOutputFile {
 public:
  enum class Temporary {
    unnamed_if_supported,  // O_TMPFILE where the file system has it, else a named temporary
    named,                 // always a named temporary (the fallback, selectable for tests)
  };

  // Creates the temporary file. Throws Error(invalid_argument) when the target is a directory or
  // another non-regular file, Error(io) naming the target and the reason when no temporary can be
  // created.
  explicit AtomicOutputFile(std::string target_path,
                            Temporary temporary = Temporary::unnamed_if_supported);
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
  // True when the data goes to an unnamed O_TMPFILE file.
  bool is_unnamed() const noexcept { return unnamed_; }
  // The named temporary's path; empty for an unnamed file (until commit() links it).
  const std::string& temporary_path() const noexcept { return temporary_path_; }
  std::uint64_t bytes_written() const noexcept { return bytes_written_; }

 private:
  void open_named();
  void link_unnamed_into_place();
  void keep_target_attributes() const;

  std::string target_path_;
  std::string temporary_path_;
  int fd_ = -1;
  bool unnamed_ = false;
  bool committed_ = false;
  std::uint64_t bytes_written_ = 0;
};

// The name "<base>.tmp.<tag>" in `target_path`'s folder, with `base` (the target's base name)
// shortened, on a UTF-8 character boundary, as far as needed to keep the name within NAME_MAX.
std::string temporary_name_beside(const std::string& target_path, const std::string& tag);

}  // namespace l2norm::io

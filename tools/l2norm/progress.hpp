// A one-line progress bar on stderr, redrawn at most ten times a second. Disabled (every call a
// no-op) unless stderr is a terminal and the user did not ask for --quiet.
#pragma once

#include <chrono>
#include <cstdint>

namespace l2norm::cli {

class ProgressBar {
 public:
  ProgressBar(bool enabled, std::int64_t total_rows, std::uint64_t bytes_per_row);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(std::int64_t rows_done);
  // Erases the bar so the next line of output starts on a clean line.
  void finish();

  static bool stderr_is_terminal() noexcept;

 private:
  void draw(std::int64_t rows_done);

  bool enabled_;
  bool drawn_ = false;
  std::int64_t total_rows_;
  std::uint64_t bytes_per_row_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace l2norm::cli

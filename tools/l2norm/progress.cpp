#include "progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <string>

namespace l2norm::cli {

namespace {

constexpr int kBarWidth = 30;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

ProgressBar::ProgressBar(bool enabled, std::int64_t total_rows, std::uint64_t bytes_per_row)
    : enabled_(enabled && total_rows > 0),
      total_rows_(total_rows),
      bytes_per_row_(bytes_per_row),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  finish();
}

bool ProgressBar::stderr_is_terminal() noexcept {
  return ::isatty(STDERR_FILENO) == 1;
}

void ProgressBar::update(std::int64_t rows_done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (rows_done < total_rows_ && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  draw(rows_done);
}

void ProgressBar::draw(std::int64_t rows_done) {
  const double fraction = static_cast<double>(rows_done) / static_cast<double>(total_rows_);
  const int filled = static_cast<int>(fraction * kBarWidth);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double gigabytes =
      static_cast<double>(rows_done) * static_cast<double>(bytes_per_row_) / 1e9;
  const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                          std::string(static_cast<std::size_t>(kBarWidth - filled), '.');
  std::fprintf(stderr, "\r[%s] %5.1f%%  %lld/%lld rows  %.2f GB/s", bar.c_str(), fraction * 100.0,
               static_cast<long long>(rows_done), static_cast<long long>(total_rows_),
               seconds > 0 ? gigabytes / seconds : 0.0);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!drawn_) return;
  std::fputs("\r\x1b[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace l2norm::cli

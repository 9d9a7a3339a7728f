// The l2norm command-line tool: normalize, stats, info. Maps failures to exit statuses: 1 for I/O
// and device failures, 2 for bad usage and malformed input, 130 after SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include "arguments.hpp"
#include "l2norm/l2norm.hpp"
#include "normalize.hpp"
#include "progress.hpp"
#include "stats.hpp"

namespace {

using namespace l2norm;
using namespace l2norm::cli;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void request_stop(int) {
  stop_requested.store(true);
}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // Past a file-size limit, write() should fail with EFBIG (and the output be cleaned up) rather
  // than the process be killed with a half-written temporary file left behind.
  std::signal(SIGXFSZ, SIG_IGN);
}

void print_summary(const NormalizeCommand& command, const NormalizeSummary& summary) {
  const double seconds = summary.seconds > 0 ? summary.seconds : 1e-9;
  const double bytes_moved = static_cast<double>(summary.bytes_read + summary.bytes_written);
  std::printf(
      "normalized %lld rows x %lld (%s -> %s, computed in %s) on %s in %.3f s: %.2f GB/s, "
      "%.0f rows/s -> %s\n",
      static_cast<long long>(summary.rows), static_cast<long long>(summary.dim),
      std::string(io::element_name(summary.input_type)).c_str(),
      std::string(io::element_name(summary.output_type)).c_str(),
      std::string(dtype_name(summary.compute_dtype)).c_str(), summary.device.name().c_str(),
      summary.seconds, bytes_moved / seconds / 1e9, static_cast<double>(summary.rows) / seconds,
      command.options.output_path.c_str());
}

int run_normalize(NormalizeCommand command) {
  command.options.show_progress = !command.quiet && ProgressBar::stderr_is_terminal();
  const NormalizeSummary summary = normalize_file(command.options, stop_requested);
  if (!command.quiet) print_summary(command, summary);
  return 0;
}

int run_stats(const StatsCommand& command) {
  const FileStats stats =
      compute_file_stats(command.path, command.in_dtype, kDefaultChunkBytes, stop_requested);
  const io::ArrayInfo& info = stats.info;
  std::printf("file:  %s (%s", command.path.c_str(),
              std::string(io::format_name(info.format)).c_str());
  if (info.format == io::FileFormat::npy) std::printf(" v%d.0", info.npy_major_version);
  std::printf(")\nshape: %s  dtype: %s  rows: %lld  dim: %lld\n",
              io::shape_text(info.shape).c_str(),
              std::string(io::element_name(info.layout.element)).c_str(),
              static_cast<long long>(info.layout.rows), static_cast<long long>(info.layout.dim));
  if (info.layout.rows == 0) return 0;
  std::printf("row L2 norm: min %.9g  max %.9g  mean %.9g  (first row %.9g)\n", stats.min_norm,
              stats.max_norm, stats.mean_norm, stats.first_row_norm);
  if (stats.nonfinite_rows > 0) {
    std::printf("rows with NaN or Inf: %lld\n", static_cast<long long>(stats.nonfinite_rows));
  }
  return 0;
}

int run_info() {
  std::printf("l2norm %s\n", L2NORM_VERSION_STRING);
  std::printf("backends:\n  cpu: %d threads\n", cpu_thread_count());
  if (cuda_available()) {
    std::printf("  cuda: available, %d device(s)\n", cuda_device_count());
  } else {
    std::printf("  cuda: unavailable (%s)\n", cuda_unavailable_reason().c_str());
  }
  std::printf("devices:\n");
  for (const DeviceInfo& device : list_devices()) {
    std::printf("  %-8s %s\n", device.device.name().c_str(), device.description.c_str());
  }
  return 0;
}

int run(const Command& command) {
  if (const auto* help = std::get_if<HelpCommand>(&command)) {
    std::fputs(help->text.c_str(), stdout);
    return 0;
  }
  if (std::holds_alternative<InfoCommand>(command)) return run_info();
  install_signal_handlers();
  if (const auto* stats = std::get_if<StatsCommand>(&command)) return run_stats(*stats);
  return run_normalize(std::get<NormalizeCommand>(command));
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> arguments(argv + 1, argv + argc);
  try {
    return run(parse_command_line(arguments));
  } catch (const UsageError& error) {
    std::fprintf(stderr, "l2norm: error: %s\n%s\n", error.what(), error.usage().c_str());
    return kExitUsage;
  } catch (const Interrupted&) {
    std::fprintf(stderr, "l2norm: interrupted; no output was written\n");
    return kExitInterrupted;
  } catch (const Error& error) {
    std::fprintf(stderr, "l2norm: error: %s\n", error.what());
    return error.code() == ErrorCode::invalid_argument ? kExitUsage : kExitFailure;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "l2norm: error: out of host memory\n");
    return kExitFailure;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "l2norm: error: %s\n", error.what());
    return kExitFailure;
  }
}

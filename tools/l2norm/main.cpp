// The l2norm command-line tool: normalize, stats, info. Maps failures to exit statuses: 1 for I/O
// and device failures, 2 for bad usage and malformed input, 130 after any caught termination
// signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM, ...).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
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
std::atomic<int> stop_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free int");

// Every signal whose default action ends the process and that can be caught. Each one only
// raises the stop flag: the pipeline sees it within its poll interval, removes the temporary
// output and the process exits 130, so no signal but SIGKILL ends a run without cleaning up.
// SIGXFSZ is not here: it is ignored so that a file-size limit is a failed write (exit 1).
constexpr int kStopSignals[] = {SIGHUP,    SIGINT,  SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
                                SIGVTALRM, SIGPROF, SIGPIPE, SIGXCPU, SIGIO,   SIGPWR,  SIGSTKFLT};

extern "C" void request_stop(int signal_number) {
  int none = 0;
  stop_signal.compare_exchange_strong(none, signal_number);
  stop_requested.store(true);
}

// Runs first in main(). The signals are unblocked once their handler is in place, so a parent
// that started the tool with them blocked (to close the window before main) gets them handled.
void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: a blocking system call returns EINTR, and main() reports any failure that
  // follows a stop request as the interruption it is.
  action.sa_flags = 0;
  sigset_t handled;
  sigemptyset(&handled);
  const auto handle = [&](int signal_number) {
    sigaction(signal_number, &action, nullptr);
    sigaddset(&handled, signal_number);
  };
  for (const int signal_number : kStopSignals) handle(signal_number);
  for (int signal_number = SIGRTMIN; signal_number <= SIGRTMAX; ++signal_number) {
    handle(signal_number);
  }
  sigprocmask(SIG_UNBLOCK, &handled, nullptr);
  // Past a file-size limit, write() should fail with EFBIG (and the output be cleaned up) rather
  // than the process be killed with a half-written temporary file left behind.
  std::signal(SIGXFSZ, SIG_IGN);
}

// A message for the terminal, on one line: control characters (ESC, newline, ...) that a path or
// an argument may hold are written as \xNN. Text quoted from a file is already escaped and cut
// short where the message is made (io::quote_for_message).
std::string printable(std::string_view message) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(message.size());
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

void print_error(std::string_view message) {
  std::fprintf(stderr, "l2norm: error: %s\n", printable(message).c_str());
}

int report_interrupted() {
  const int signal_number = stop_signal.load();
  const char* name = sigabbrev_np(signal_number);
  std::fprintf(stderr, "l2norm: interrupted by SIG%s; no output was written\n",
               name != nullptr ? name : std::to_string(signal_number).c_str());
  return kExitInterrupted;
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
  if (stats.finite_rows == 0) {
    std::printf("row L2 norm: none finite (all %lld rows hold NaN or Inf)\n",
                static_cast<long long>(stats.nonfinite_rows));
    return 0;
  }
  std::printf("row L2 norm: min %.9g  max %.9g  mean %.9g  (first row %.9g)", stats.min_norm,
              stats.max_norm, stats.mean_norm, stats.first_row_norm);
  if (stats.nonfinite_rows > 0) {
    std::printf(", over the %lld finite rows\nrows with NaN or Inf: %lld (not in min/max/mean)\n",
                static_cast<long long>(stats.finite_rows),
                static_cast<long long>(stats.nonfinite_rows));
  } else {
    std::printf("\n");
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
  if (const auto* stats = std::get_if<StatsCommand>(&command)) return run_stats(*stats);
  return run_normalize(std::get<NormalizeCommand>(command));
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  const std::vector<std::string> arguments(argv + 1, argv + argc);
  try {
    return run(parse_command_line(arguments));
  } catch (const UsageError& error) {
    if (stop_requested.load()) return report_interrupted();
    std::fprintf(stderr, "l2norm: error: %s\n%s\n", printable(error.what()).c_str(),
                 error.usage().c_str());
    return kExitUsage;
  } catch (const Interrupted&) {
    return report_interrupted();
  } catch (const Error& error) {
    // A failure after a stop request is its consequence (EINTR from a blocking call): exit 130.
    if (stop_requested.load()) return report_interrupted();
    print_error(error.what());
    return error.code() == ErrorCode::invalid_argument ? kExitUsage : kExitFailure;
  } catch (const std::bad_alloc&) {
    if (stop_requested.load()) return report_interrupted();
    print_error("out of host memory");
    return kExitFailure;
  } catch (const std::exception& error) {
    if (stop_requested.load()) return report_interrupted();
    print_error(error.what());
    return kExitFailure;
  }
}

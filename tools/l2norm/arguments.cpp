#include "arguments.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace l2norm::cli {

namespace {

constexpr const char* kMainUsage = "usage: l2norm {normalize,stats,info} ... (l2norm --help)";
constexpr const char* kNormalizeUsage =
    "usage: l2norm normalize IN -o OUT [--eps E] [--scale S] [--eps-mode add|clamp]\n"
    "                        [--device auto|cpu|cuda[:N]] [--out-dtype f32|f16|bf16]\n"
    "                        [--in-dtype f32|f16|bf16] [--chunk-size BYTES] [--quiet]";
constexpr const char* kStatsUsage = "usage: l2norm stats FILE [--in-dtype f32|f16|bf16]";
constexpr const char* kInfoUsage = "usage: l2norm info";

constexpr const char* kMainHelp =
    R"(l2norm: row-wise L2 normalization of embedding files, on the CPU or an NVIDIA GPU.

usage: l2norm <command> [options]

commands:
  normalize IN -o OUT   write IN with every row scaled to unit L2 norm (.npy or .fvecs)
  stats FILE            print the shape, element type and row-norm range of a file
  info                  print the version, backends and devices

Run 'l2norm <command> --help' for the options of a command.
Exit status: 0 success, 1 I/O or device failure, 2 bad usage or malformed input, 130 interrupted.
)";

constexpr const char* kNormalizeHelp = R"(usage: l2norm normalize IN -o OUT [options]

Normalizes each row of IN: y = x / sqrt(sum(x^2) + eps) (or x / max(norm, eps) with
--eps-mode clamp), times --scale. Rows are the product of the leading dimensions, the row length
is the last one. The file is streamed in chunks, so files larger than memory work; reading,
compute and writing overlap on three threads.

inputs:   .npy (format 1.0, 2.0, 3.0; C order; any rank >= 1) with descr '<f4', '<f2', '<f8'
          (f64 is computed in f32), or '<V2' with --in-dtype bf16 (ml_dtypes bfloat16 arrays);
          .fvecs (records of an int32 dimension and that many float32 values).
outputs:  chosen by OUT's extension. .npy keeps the input's shape; bf16 is written with descr
          '<V2' (load with np.load(OUT).view(ml_dtypes.bfloat16)). .fvecs holds f32 only.

options:
  -o, --output OUT       output path (.npy or .fvecs); must not be IN
  --eps E                added to the sum of squares (add) or the norm's floor (clamp); default 1e-6
                         (a finite f32: 0, or between about 1.4e-45 and 3.4e38)
  --eps-mode add|clamp   where eps goes; default add
  --scale S              multiply the normalized rows by S; default 1
  --device D             auto (cuda:0 when usable, else cpu), cpu, cuda or cuda:N; default auto
  --out-dtype T          f32, f16 or bf16; default the input's (f32 for f64 input or .fvecs)
  --in-dtype T           what IN holds; needed (bf16) for '<V2' arrays
  --chunk-size BYTES     input bytes per chunk (K/M/G suffixes); default 64M (inputs under 512M:
                         an eighth of the input, at least 4M); at least one row
  -q, --quiet            no progress bar and no summary line
  -h, --help             this help

The same dtype in and out is computed in that dtype; otherwise the input is widened exactly to
f32, normalized and rounded once to the output type. OUT appears only when everything
succeeded: the result is written to an unnamed file in OUT's folder (O_TMPFILE; a named
temporary beside OUT where the file system lacks it) and linked or renamed into place. On an
error or a signal (SIGINT, SIGTERM, SIGHUP, ...: exit 130) neither OUT nor a temporary file is
left, and an existing OUT is unchanged; a replaced OUT keeps its mode.
)";

constexpr const char* kStatsHelp = R"(usage: l2norm stats FILE [--in-dtype f32|f16|bf16]

Prints the format, shape and element type of FILE (.npy or .fvecs) and the minimum, maximum
and mean L2 norm of its rows (computed in double; rows holding NaN or Inf are counted apart).
A normalized file shows norms of 1 within rounding.
)";

constexpr const char* kInfoHelp = R"(usage: l2norm info

Prints the library version, the backends this build has and the devices it can use.
)";

struct Option {
  std::string name;
  std::optional<std::string> inline_value;
};

Option split_option(const std::string& argument) {
  const std::size_t equals = argument.find('=');
  if (argument.rfind("--", 0) == 0 && equals != std::string::npos) {
    return {argument.substr(0, equals), argument.substr(equals + 1)};
  }
  return {argument, std::nullopt};
}

bool is_option(const std::string& argument) {
  return argument.size() > 1 && argument[0] == '-';
}

class ArgumentWalker {
 public:
  ArgumentWalker(std::span<const std::string> arguments, const char* usage)
      : arguments_(arguments), usage_(usage) {}

  bool next() {
    if (index_ >= arguments_.size()) return false;
    current_ = arguments_[index_++];
    option_ = split_option(current_);
    return true;
  }
  const std::string& argument() const { return current_; }
  const std::string& name() const { return option_.name; }

  std::string value() {
    if (option_.inline_value) return *option_.inline_value;
    if (index_ >= arguments_.size()) fail(option_.name + " needs a value");
    return arguments_[index_++];
  }
  void forbid_value() const {
    if (option_.inline_value) fail(option_.name + " takes no value");
  }
  [[noreturn]] void fail(const std::string& message) const { throw UsageError(message, usage_); }

 private:
  std::span<const std::string> arguments_;
  const char* usage_;
  std::size_t index_ = 0;
  std::string current_;
  Option option_;
};

// A finite f32. A well-formed number outside f32's range is told apart from text that is not a
// number: one too large for f32, and a nonzero one too small (it would silently become 0).
float parse_float(const ArgumentWalker& walker, const std::string& text) {
  float value = 0;
  const char* const last = text.data() + text.size();
  const auto [end, error] = std::from_chars(text.data(), last, value);
  if (text.empty() || end != last ||
      (error != std::errc() && error != std::errc::result_out_of_range)) {
    walker.fail(walker.name() + ": '" + text + "' is not a number");
  }
  if (error == std::errc::result_out_of_range) {
    // The text is a well-formed number. strtod (C locale: the tool never sets one) gives its
    // value, HUGE_VAL past double's range or 0 below it, so |wide| < 1 means too small for f32.
    const double wide = std::strtod(text.c_str(), nullptr);
    const bool underflows = std::fabs(wide) < 1;
    if (underflows) {
      walker.fail(walker.name() + ": " + text +
                  " is nonzero but below the smallest f32 magnitude (about 1.4e-45) and would be "
                  "0; pass 0 if 0 is meant");
    }
    walker.fail(walker.name() + ": " + text +
                " is out of f32 range (largest finite magnitude about 3.4028235e38)");
  }
  if (!std::isfinite(value)) walker.fail(walker.name() + ": " + text + " is not finite");
  return value;
}

io::ElementType parse_element_type(const ArgumentWalker& walker, const std::string& text) {
  const std::optional<DType> dtype = try_parse_dtype(text);
  if (!dtype) walker.fail(walker.name() + ": unknown dtype '" + text + "' (use f32, f16 or bf16)");
  return io::element_type_of(*dtype);
}

Command parse_normalize(std::span<const std::string> arguments) {
  ArgumentWalker walker(arguments, kNormalizeUsage);
  NormalizeCommand command;
  NormalizeOptions& options = command.options;
  std::vector<std::string> positional;
  bool have_output = false;
  while (walker.next()) {
    const std::string& name = walker.name();
    if (name == "-h" || name == "--help") {
      return HelpCommand{kNormalizeHelp};
    } else if (name == "-o" || name == "--output") {
      options.output_path = walker.value();
      have_output = true;
    } else if (name == "--eps") {
      options.op.eps = parse_float(walker, walker.value());
      if (options.op.eps < 0) walker.fail("--eps must be >= 0");
    } else if (name == "--scale") {
      options.op.scale = parse_float(walker, walker.value());
    } else if (name == "--eps-mode") {
      const std::string mode = walker.value();
      if (mode == "add") {
        options.op.eps_mode = EpsMode::add;
      } else if (mode == "clamp") {
        options.op.eps_mode = EpsMode::clamp;
      } else {
        walker.fail("--eps-mode: unknown mode '" + mode + "' (use add or clamp)");
      }
    } else if (name == "--device") {
      options.device = walker.value();
      if (options.device != "auto") {
        try {
          Device::parse(options.device);
        } catch (const Error&) {
          walker.fail("--device: unknown device '" + options.device +
                      "' (use auto, cpu, cuda or cuda:N)");
        }
      }
    } else if (name == "--out-dtype") {
      const std::string text = walker.value();
      const std::optional<DType> dtype = try_parse_dtype(text);
      if (!dtype) walker.fail("--out-dtype: unknown dtype '" + text + "' (use f32, f16 or bf16)");
      options.out_dtype = dtype;
    } else if (name == "--in-dtype") {
      options.in_dtype = parse_element_type(walker, walker.value());
    } else if (name == "--chunk-size") {
      const std::string text = walker.value();
      const std::optional<std::uint64_t> bytes = parse_byte_count(text);
      if (!bytes || *bytes == 0) {
        walker.fail("--chunk-size: '" + text + "' is not a positive byte count (e.g. 64M)");
      }
      options.chunk_bytes = *bytes;
    } else if (name == "-q" || name == "--quiet") {
      walker.forbid_value();
      command.quiet = true;
    } else if (is_option(walker.argument())) {
      walker.fail("unknown option " + name);
    } else {
      positional.push_back(walker.argument());
    }
  }
  if (positional.empty()) walker.fail("missing the input file IN");
  if (positional.size() > 1) walker.fail("more than one input file: " + positional[1]);
  if (!have_output || options.output_path.empty()) walker.fail("missing -o OUT");
  options.input_path = positional.front();
  const std::optional<io::FileFormat> output_format =
      io::format_from_extension(options.output_path);
  if (!output_format) walker.fail("OUT must end in .npy or .fvecs: " + options.output_path);
  if (*output_format == io::FileFormat::fvecs && options.out_dtype &&
      *options.out_dtype != DType::f32) {
    walker.fail(".fvecs output holds f32 only, not " + std::string(dtype_name(*options.out_dtype)));
  }
  return command;
}

Command parse_stats(std::span<const std::string> arguments) {
  ArgumentWalker walker(arguments, kStatsUsage);
  StatsCommand command;
  std::vector<std::string> positional;
  while (walker.next()) {
    const std::string& name = walker.name();
    if (name == "-h" || name == "--help") return HelpCommand{kStatsHelp};
    if (name == "--in-dtype") {
      command.in_dtype = parse_element_type(walker, walker.value());
    } else if (is_option(walker.argument())) {
      walker.fail("unknown option " + name);
    } else {
      positional.push_back(walker.argument());
    }
  }
  if (positional.size() != 1) walker.fail("expected exactly one FILE");
  command.path = positional.front();
  return command;
}

Command parse_info(std::span<const std::string> arguments) {
  ArgumentWalker walker(arguments, kInfoUsage);
  while (walker.next()) {
    if (walker.name() == "-h" || walker.name() == "--help") return HelpCommand{kInfoHelp};
    walker.fail("unexpected argument " + walker.argument());
  }
  return InfoCommand{};
}

}  // namespace

std::optional<std::uint64_t> parse_byte_count(std::string_view text) noexcept {
  std::uint64_t multiplier = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
      case 'k':
        multiplier = std::uint64_t{1} << 10;
        break;
      case 'M':
      case 'm':
        multiplier = std::uint64_t{1} << 20;
        break;
      case 'G':
      case 'g':
        multiplier = std::uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (multiplier != 1) text.remove_suffix(1);
  }
  std::uint64_t count = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, multiplier, &bytes)) return std::nullopt;
  return bytes;
}

Command parse_command_line(std::span<const std::string> arguments) {
  if (arguments.empty()) throw UsageError("missing command", kMainUsage);
  const std::string& command = arguments.front();
  const auto rest = arguments.subspan(1);
  if (command == "-h" || command == "--help" || command == "help") return HelpCommand{kMainHelp};
  if (command == "normalize") return parse_normalize(rest);
  if (command == "stats") return parse_stats(rest);
  if (command == "info") return parse_info(rest);
  throw UsageError("unknown command '" + command + "'", kMainUsage);
}

}  // namespace l2norm::cli

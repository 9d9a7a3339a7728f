// Command-line parsing for the l2norm tool. Options take "--name value" or "--name=value".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>

#include "normalize.hpp"

namespace l2norm::cli {

// Bad usage: main prints the message, the command's usage line, and exits with status 2.
class UsageError : public std::runtime_error {
 public:
  UsageError(const std::string& message, std::string usage)
      : std::runtime_error(message), usage_(std::move(usage)) {}
  const std::string& usage() const noexcept { return usage_; }

 private:
  std::string usage_;
};

struct HelpCommand {
  std::string text;
};
struct InfoCommand {};
struct StatsCommand {
  std::string path;
  std::optional<io::ElementType> in_dtype;
};
struct NormalizeCommand {
  NormalizeOptions options;
  bool quiet = false;
};

using Command = std::variant<HelpCommand, InfoCommand, StatsCommand, NormalizeCommand>;

// `arguments` excludes the program name. Throws UsageError.
Command parse_command_line(std::span<const std::string> arguments);

// "64M", "1G", "4096": a byte count with an optional binary K/M/G suffix.
std::optional<std::uint64_t> parse_byte_count(std::string_view text) noexcept;

}  // namespace l2norm::cli

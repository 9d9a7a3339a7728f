// A parser for the subset of Python literal syntax that .npy headers use: a dict whose values are
// strings ('..' or ".."), integers, True/False/None, tuples and lists (trailing commas allowed),
// nested dicts. Anything else, including trailing text after the literal, is rejected with a
// message naming the byte offset. Nesting is bounded so hostile input cannot exhaust the stack.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace l2norm::io {

struct PyEntry;

struct PyValue {
  enum class Kind { string, integer, boolean, none, tuple, list, dict };

  Kind kind = Kind::none;
  // string: the decoded text; integer: the decimal digits with a leading '-' when negative (kept
  // as text so that values beyond int64 can be reported rather than wrapped).
  std::string text;
  bool boolean = false;
  std::vector<PyValue> items;    // tuple, list
  std::vector<PyEntry> entries;  // dict, keys in source order
};

struct PyEntry {
  std::string key;
  PyValue value;
};

std::string_view py_kind_name(PyValue::Kind kind) noexcept;

// Parses `text` as exactly one literal, surrounded by optional whitespace. Dict keys must be
// strings and unique. Throws Error(invalid_argument) with "<what> at offset N".
PyValue parse_python_literal(std::string_view text);

// How much of a text read from a file an error message quotes: about this many characters.
inline constexpr std::size_t kMessageExcerptChars = 80;

// Writes a literal back in Python's repr spelling, for error messages: strings as
// quote_for_message() gives them, integers of more than kMessageExcerptChars digits and sequences
// and dicts longer than that cut short with "...", so the result is printable ASCII of at most
// about 2 * kMessageExcerptChars characters whatever the value.
std::string python_repr(const PyValue& value);

// `text` (bytes from a file) quoted for a message that goes to a terminal: in single quotes,
// printable ASCII as is, \\, \' \n, \r, \t for those characters, every other byte (control
// characters, ESC, bytes >= 0x80) as \xNN. At most kMessageExcerptChars bytes of `text` are shown;
// a longer text is followed by "... (N bytes)".
std::string quote_for_message(std::string_view text);

}  // namespace l2norm::io

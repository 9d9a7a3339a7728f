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

// Writes a literal back in Python's repr spelling (used by error messages and tests).
std::string python_repr(const PyValue& value);

}  // namespace l2norm::io

#include "python_literal.hpp"

#include "l2norm/error.hpp"

namespace l2norm::io {

namespace {

constexpr int kMaxNesting = 16;

class LiteralParser {
 public:
  explicit LiteralParser(std::string_view text) : text_(text) {}

  PyValue parse_document() {
    skip_whitespace();
    PyValue value = parse_value(0);
    skip_whitespace();
    if (position_ != text_.size()) fail("unexpected text after the literal");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::invalid_argument, what + " at offset " + std::to_string(position_));
  }

  bool at_end() const noexcept { return position_ >= text_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : text_[position_]; }

  void skip_whitespace() noexcept {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++position_;
    }
  }

  void expect(char wanted) {
    if (peek() != wanted) fail(std::string("expected '") + wanted + "'");
    ++position_;
  }

  PyValue parse_value(int depth) {
    if (depth > kMaxNesting) fail("literal nested deeper than " + std::to_string(kMaxNesting));
    if (at_end()) fail("unexpected end of text, expected a value");
    const char c = peek();
    if (c == '\'' || c == '"') return parse_string();
    if (c == '-' || (c >= '0' && c <= '9')) return parse_integer();
    if (c == '(') return parse_sequence(depth, PyValue::Kind::tuple, ')');
    if (c == '[') return parse_sequence(depth, PyValue::Kind::list, ']');
    if (c == '{') return parse_dict(depth);
    if (is_identifier_char(c)) return parse_keyword();
    fail("unexpected character " + quote_for_message(std::string_view(&c, 1)));
  }

  static bool is_identifier_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }

  PyValue parse_keyword() {
    const std::size_t start = position_;
    while (!at_end() && is_identifier_char(peek())) ++position_;
    const std::string_view word = text_.substr(start, position_ - start);
    PyValue value;
    if (word == "True" || word == "False") {
      value.kind = PyValue::Kind::boolean;
      value.boolean = word == "True";
    } else if (word == "None") {
      value.kind = PyValue::Kind::none;
    } else {
      position_ = start;
      fail("unknown name " + quote_for_message(word));
    }
    return value;
  }

  PyValue parse_string() {
    const char quote = peek();
    ++position_;
    PyValue value;
    value.kind = PyValue::Kind::string;
    while (true) {
      if (at_end()) fail("unterminated string");
      const char c = text_[position_++];
      if (c == quote) break;
      if (c == '\n') fail("newline inside a string");
      if (c == '\\') {
        if (at_end()) fail("unterminated string");
        const char escaped = text_[position_++];
        if (escaped != '\\' && escaped != '\'' && escaped != '"') {
          --position_;
          fail("unsupported escape " + quote_for_message(std::string{'\\', escaped}) +
               " in a string");
        }
        value.text.push_back(escaped);
      } else {
        value.text.push_back(c);
      }
    }
    return value;
  }

  PyValue parse_integer() {
    PyValue value;
    value.kind = PyValue::Kind::integer;
    if (peek() == '-') {
      value.text.push_back('-');
      ++position_;
    }
    const std::size_t digits_start = position_;
    while (!at_end() && peek() >= '0' && peek() <= '9') value.text.push_back(text_[position_++]);
    if (position_ == digits_start) fail("expected digits after '-'");
    if (!at_end() &&
        (peek() == '.' || peek() == 'e' || peek() == 'E' || is_identifier_char(peek()))) {
      fail("only decimal integers are supported, found a number continuing with '" +
           std::string(1, peek()) + "'");
    }
    if (value.text.size() - (value.text[0] == '-' ? 1 : 0) > 1 && text_[digits_start] == '0') {
      position_ = digits_start;
      fail("integer with a leading zero");
    }
    return value;
  }

  PyValue parse_sequence(int depth, PyValue::Kind kind, char closer) {
    ++position_;
    PyValue value;
    value.kind = kind;
    bool saw_comma = false;
    skip_whitespace();
    while (peek() != closer) {
      value.items.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++position_;
        saw_comma = true;
        skip_whitespace();
      } else if (peek() != closer) {
        fail(std::string("expected ',' or '") + closer + "'");
      }
    }
    ++position_;
    // Python reads "(5)" as the integer 5, not a tuple: only "()", "(5,)", "(5, 6)" are tuples.
    if (kind == PyValue::Kind::tuple && value.items.size() == 1 && !saw_comma) {
      return std::move(value.items.front());
    }
    return value;
  }

  PyValue parse_dict(int depth) {
    ++position_;
    PyValue value;
    value.kind = PyValue::Kind::dict;
    skip_whitespace();
    while (peek() != '}') {
      const std::size_t key_position = position_;
      if (peek() != '\'' && peek() != '"') fail("dict keys must be strings");
      std::string key = parse_string().text;
      for (const auto& entry : value.entries) {
        if (entry.key == key) {
          position_ = key_position;
          fail("duplicate key " + quote_for_message(key));
        }
      }
      skip_whitespace();
      expect(':');
      skip_whitespace();
      PyValue item = parse_value(depth + 1);
      value.entries.push_back({std::move(key), std::move(item)});
      skip_whitespace();
      if (peek() == ',') {
        ++position_;
        skip_whitespace();
      } else if (peek() != '}') {
        fail("expected ',' or '}'");
      }
    }
    ++position_;
    return value;
  }

  std::string_view text_;
  std::size_t position_ = 0;
};

// A digit string (an integer's text) cut to kMessageExcerptChars characters.
std::string clip_digits(const std::string& digits) {
  if (digits.size() <= kMessageExcerptChars) return digits;
  return digits.substr(0, kMessageExcerptChars) + "... (" + std::to_string(digits.size()) +
         " digits)";
}

std::string repr(const PyValue& value) {
  switch (value.kind) {
    case PyValue::Kind::string:
      return quote_for_message(value.text);
    case PyValue::Kind::integer:
      return clip_digits(value.text);
    case PyValue::Kind::boolean:
      return value.boolean ? "True" : "False";
    case PyValue::Kind::none:
      return "None";
    case PyValue::Kind::tuple:
    case PyValue::Kind::list: {
      const bool tuple = value.kind == PyValue::Kind::tuple;
      std::string out = tuple ? "(" : "[";
      for (std::size_t i = 0; i < value.items.size(); ++i) {
        if (i > 0) out += ", ";
        if (out.size() >= kMessageExcerptChars) {
          out += "... (" + std::to_string(value.items.size()) + " items)";
          break;
        }
        out += repr(value.items[i]);
      }
      if (tuple && value.items.size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case PyValue::Kind::dict: {
      std::string out = "{";
      for (std::size_t i = 0; i < value.entries.size(); ++i) {
        if (i > 0) out += ", ";
        if (out.size() >= kMessageExcerptChars) {
          out += "... (" + std::to_string(value.entries.size()) + " entries)";
          break;
        }
        out += quote_for_message(value.entries[i].key) + ": " + repr(value.entries[i].value);
      }
      return out + "}";
    }
  }
  return "?";
}

}  // namespace

std::string_view py_kind_name(PyValue::Kind kind) noexcept {
  switch (kind) {
    case PyValue::Kind::string:
      return "a string";
    case PyValue::Kind::integer:
      return "an integer";
    case PyValue::Kind::boolean:
      return "a boolean";
    case PyValue::Kind::none:
      return "None";
    case PyValue::Kind::tuple:
      return "a tuple";
    case PyValue::Kind::list:
      return "a list";
    case PyValue::Kind::dict:
      return "a dict";
  }
  return "?";
}

PyValue parse_python_literal(std::string_view text) {
  return LiteralParser(text).parse_document();
}

std::string python_repr(const PyValue& value) {
  return repr(value);
}

std::string quote_for_message(std::string_view text) {
  constexpr char kHex[] = "0123456789abcdef";
  const std::string_view shown = text.substr(0, kMessageExcerptChars);
  std::string out = "'";
  for (const char c : shown) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  out += '\'';
  if (text.size() > shown.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace l2norm::io

#include "npy.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "l2norm/error.hpp"
#include "python_literal.hpp"

namespace l2norm::io {

namespace {

constexpr std::array<unsigned char, 6> kMagic = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::uint64_t kPreambleBytes = kMagic.size() + 2;  // magic, major, minor
constexpr std::uint64_t kDataAlignment = 64;

std::uint64_t load_le(const std::byte* bytes, int count) noexcept {
  std::uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i)
    value = (value << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  return value;
}

// A shape for an error message: shape_text() cut to about kMessageExcerptChars characters, so
// a header of many thousands of dimensions does not flood the terminal.
std::string shape_excerpt(const std::vector<std::int64_t>& shape) {
  const std::string text = shape_text(shape);
  if (text.size() <= kMessageExcerptChars) return text;
  return text.substr(0, kMessageExcerptChars) + "... (" + std::to_string(shape.size()) +
         " dimensions)";
}

class NpyHeaderReader {
 public:
  NpyHeaderReader(const ByteSource& source, std::optional<ElementType> declared)
      : source_(source), declared_(declared) {}

  ArrayInfo read() {
    ArrayInfo info;
    info.format = FileFormat::npy;
    const std::uint64_t file_size = source_.size();
    if (file_size < kPreambleBytes) {
      fail("too short to be a .npy file (" + std::to_string(file_size) + " bytes)");
    }
    std::array<std::byte, kPreambleBytes> preamble{};
    source_.read_at(0, preamble);
    if (std::memcmp(preamble.data(), kMagic.data(), kMagic.size()) != 0) {
      fail("bad magic: not a .npy file (expected \\x93NUMPY)");
    }
    const int major = std::to_integer<int>(preamble[6]);
    const int minor = std::to_integer<int>(preamble[7]);
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
      fail("unsupported .npy format version " + std::to_string(major) + "." +
           std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
    }
    info.npy_major_version = major;
    const int length_bytes = major == 1 ? 2 : 4;
    const std::uint64_t header_start = kPreambleBytes + static_cast<std::uint64_t>(length_bytes);
    if (file_size < header_start) fail("file ends inside the header length field");
    std::array<std::byte, 4> length_field{};
    source_.read_at(kPreambleBytes, std::span(length_field).first(std::size_t(length_bytes)));
    const std::uint64_t header_length = load_le(length_field.data(), length_bytes);
    if (header_length > file_size - header_start) {
      fail("header length " + std::to_string(header_length) + " runs past the end of the file (" +
           std::to_string(file_size) + " bytes)");
    }
    if (header_length > kMaxNpyHeaderBytes) {
      fail("header length " + std::to_string(header_length) + " exceeds the " +
           std::to_string(kMaxNpyHeaderBytes) + "-byte limit");
    }
    std::string header(header_length, '\0');
    source_.read_at(header_start, std::as_writable_bytes(std::span(header.data(), header.size())));
    parse_dict(header, info);

    const std::uint64_t data_offset = header_start + header_length;
    info.layout.data_offset = data_offset;
    info.layout.row_prefix = 0;
    info.layout.row_stride = info.layout.row_value_bytes();
    check_data_size(info, file_size - data_offset);
    return info;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::invalid_argument, source_.name() + ": " + what);
  }

  void parse_dict(const std::string& header, ArrayInfo& info) const {
    PyValue dict;
    try {
      dict = parse_python_literal(header);
    } catch (const Error& error) {
      fail(std::string("header is not a valid Python literal: ") + error.what());
    }
    if (dict.kind != PyValue::Kind::dict) {
      fail(std::string("header is ") + std::string(py_kind_name(dict.kind)) + ", expected a dict");
    }
    const PyValue* descr = nullptr;
    const PyValue* fortran_order = nullptr;
    const PyValue* shape = nullptr;
    for (const auto& [key, value] : dict.entries) {
      if (key == "descr") {
        descr = &value;
      } else if (key == "fortran_order") {
        fortran_order = &value;
      } else if (key == "shape") {
        shape = &value;
      } else {
        fail("header has an unexpected key " + quote_for_message(key) +
             " (expected exactly 'descr', 'fortran_order', 'shape')");
      }
    }
    if (descr == nullptr) fail("header is missing the key 'descr'");
    if (fortran_order == nullptr) fail("header is missing the key 'fortran_order'");
    if (shape == nullptr) fail("header is missing the key 'shape'");

    info.layout.element = parse_descr(*descr);
    if (fortran_order->kind != PyValue::Kind::boolean) {
      fail("'fortran_order' is " + python_repr(*fortran_order) + ", expected True or False");
    }
    if (fortran_order->boolean) {
      fail(
          "fortran_order is True: Fortran-ordered arrays are not supported; save the array in C "
          "order (np.ascontiguousarray)");
    }
    parse_shape(*shape, info);
  }

  ElementType parse_descr(const PyValue& descr) const {
    if (descr.kind != PyValue::Kind::string) {
      if (descr.kind == PyValue::Kind::list) {
        fail("descr " + python_repr(descr) +
             " is a structured dtype; only plain float arrays are supported");
      }
      fail("'descr' is " + python_repr(descr) + ", expected a dtype string such as '<f4'");
    }
    const std::string& text = descr.text;
    if (text == "<f4") return checked_declared(ElementType::f32, text);
    if (text == "<f2") return checked_declared(ElementType::f16, text);
    if (text == "<f8") return checked_declared(ElementType::f64, text);
    if (text == "<V2" || text == "|V2") {
      if (declared_ != ElementType::bf16) {
        fail("descr " + quote_for_message(text) +
             " holds 2-byte opaque elements (how ml_dtypes bfloat16 arrays are saved); pass "
             "--in-dtype bf16 if they are bfloat16");
      }
      return ElementType::bf16;
    }
    if (text == ">f4" || text == ">f2" || text == ">f8") {
      fail("descr " + quote_for_message(text) +
           " is big-endian; only little-endian data is supported (use "
           "arr.astype(arr.dtype.newbyteorder('<')))");
    }
    fail("unsupported descr " + quote_for_message(text) +
         " (supported: '<f4', '<f2', '<f8', and '<V2' with "
         "--in-dtype bf16)");
  }

  ElementType checked_declared(ElementType stored, const std::string& descr) const {
    if (declared_ && *declared_ != stored) {
      fail("--in-dtype " + std::string(element_name(*declared_)) + " does not match descr " +
           quote_for_message(descr) + " (" + std::string(element_name(stored)) + ")");
    }
    return stored;
  }

  void parse_shape(const PyValue& shape, ArrayInfo& info) const {
    if (shape.kind != PyValue::Kind::tuple) {
      fail("'shape' is " + python_repr(shape) + ", expected a tuple of integers");
    }
    if (shape.items.empty()) fail("shape () is a scalar; at least one dimension is needed");
    for (const PyValue& entry : shape.items) {
      if (entry.kind != PyValue::Kind::integer) {
        fail("shape " + python_repr(shape) + " has a non-integer entry " + python_repr(entry));
      }
      if (entry.text.front() == '-' && entry.text != "-0") {
        fail("shape " + python_repr(shape) + " has a negative entry " + python_repr(entry));
      }
      std::int64_t size = 0;
      const std::string_view digits =
          entry.text.front() == '-' ? std::string_view(entry.text).substr(1) : entry.text;
      const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), size);
      if (error != std::errc() || end != digits.data() + digits.size()) {
        fail("shape " + python_repr(shape) + " has an entry " + python_repr(entry) +
             " too large for a 64-bit size");
      }
      info.shape.push_back(size);
    }
    const std::int64_t dim = info.shape.back();
    if (dim == 0) fail("shape " + shape_excerpt(info.shape) + " has a last dimension of 0");
    std::int64_t rows = 1;
    for (std::size_t i = 0; i + 1 < info.shape.size(); ++i) {
      if (__builtin_mul_overflow(rows, info.shape[i], &rows)) overflow(info);
    }
    std::int64_t elements = 0;
    std::int64_t data_bytes = 0;
    if (__builtin_mul_overflow(rows, dim, &elements) ||
        __builtin_mul_overflow(
            elements, static_cast<std::int64_t>(element_size(info.layout.element)), &data_bytes)) {
      overflow(info);
    }
    info.layout.rows = rows;
    info.layout.dim = dim;
  }

  [[noreturn]] void overflow(const ArrayInfo& info) const {
    fail("shape " + shape_excerpt(info.shape) + " times the " +
         std::to_string(element_size(info.layout.element)) +
         "-byte element size overflows a 64-bit byte count");
  }

  void check_data_size(const ArrayInfo& info, std::uint64_t available) const {
    const std::uint64_t expected =
        static_cast<std::uint64_t>(info.layout.rows) * info.layout.row_value_bytes();
    if (available < expected) {
      fail("truncated data: shape " + shape_excerpt(info.shape) + " of " +
           std::string(element_name(info.layout.element)) + " needs " + std::to_string(expected) +
           " bytes after the header, the file holds " + std::to_string(available));
    }
    if (available > expected) {
      fail(std::to_string(available - expected) + " trailing bytes after the " +
           std::to_string(expected) + " bytes of data that shape " + shape_excerpt(info.shape) +
           " needs");
    }
  }

  const ByteSource& source_;
  std::optional<ElementType> declared_;
};

std::string_view descr_of(ElementType element) noexcept {
  switch (element) {
    case ElementType::f32:
      return "<f4";
    case ElementType::f16:
      return "<f2";
    case ElementType::bf16:
      return "<V2";
    case ElementType::f64:
      return "<f8";
  }
  return "?";
}

void append_integer(std::string& text, std::int64_t value) {
  // to_chars ignores the locale, so no digit grouping can slip into the header.
  std::array<char, 24> digits{};
  const auto result = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  text.append(digits.data(), result.ptr);
}

}  // namespace

ArrayInfo read_npy_info(const ByteSource& source, std::optional<ElementType> declared) {
  return NpyHeaderReader(source, declared).read();
}

std::vector<std::byte> make_npy_header(ElementType element, std::span<const std::int64_t> shape) {
  std::string dict = "{'descr': '";
  dict += descr_of(element);
  dict += "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) dict += ", ";
    append_integer(dict, shape[i]);
  }
  dict += shape.size() == 1 ? ",), }" : "), }";

  const auto padded_length = [&dict](std::uint64_t length_bytes) {
    const std::uint64_t unpadded = kPreambleBytes + length_bytes + dict.size() + 1;  // + '\n'
    return dict.size() + 1 + (kDataAlignment - unpadded % kDataAlignment) % kDataAlignment;
  };
  int major = 1;
  std::uint64_t header_length = padded_length(2);
  if (header_length > std::numeric_limits<std::uint16_t>::max()) {
    major = 2;
    header_length = padded_length(4);
  }
  const int length_bytes = major == 1 ? 2 : 4;

  std::vector<std::byte> bytes;
  bytes.reserve(kPreambleBytes + static_cast<std::size_t>(length_bytes) + header_length);
  for (const unsigned char c : kMagic) bytes.push_back(std::byte{c});
  bytes.push_back(std::byte(major));
  bytes.push_back(std::byte{0});
  for (int i = 0; i < length_bytes; ++i)
    bytes.push_back(std::byte((header_length >> (8 * i)) & 0xff));
  for (const char c : dict) bytes.push_back(std::byte(c));
  while (bytes.size() + 1 <
         kPreambleBytes + static_cast<std::size_t>(length_bytes) + header_length) {
    bytes.push_back(std::byte{' '});
  }
  bytes.push_back(std::byte{'\n'});
  return bytes;
}

}  // namespace l2norm::io

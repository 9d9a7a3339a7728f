#include "npy_bytes.hpp"

#include <cstring>

namespace l2norm::testing {

std::vector<std::byte> npy_image(int major, int minor, const std::string& header,
                                 std::size_t data_bytes, std::byte fill) {
  std::vector<std::byte> bytes = as_bytes("\x93NUMPY");
  bytes.push_back(std::byte(major));
  bytes.push_back(std::byte(minor));
  const int length_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < length_bytes; ++i) {
    bytes.push_back(std::byte((header.size() >> (8 * i)) & 0xff));
  }
  for (const char c : header) bytes.push_back(std::byte(c));
  bytes.insert(bytes.end(), data_bytes, fill);
  return bytes;
}

std::vector<std::byte> fvecs_image(const std::vector<std::vector<float>>& rows) {
  std::vector<std::byte> bytes;
  for (const auto& row : rows) {
    const auto dim = static_cast<std::int32_t>(row.size());
    const std::size_t at = bytes.size();
    bytes.resize(at + 4 + 4 * row.size());
    std::memcpy(bytes.data() + at, &dim, 4);
    std::memcpy(bytes.data() + at + 4, row.data(), 4 * row.size());
  }
  return bytes;
}

std::vector<std::byte> as_bytes(const std::string& text) {
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

}  // namespace l2norm::testing

// Builders of .npy and .fvecs file images in memory, for the parser and CLI tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace l2norm::testing {

// "\x93NUMPY", version major.minor, the header length (2 bytes for 1.x, 4 otherwise) and
// `header` exactly as given, then `data_bytes` bytes of `fill`.
std::vector<std::byte> npy_image(int major, int minor, const std::string& header,
                                 std::size_t data_bytes, std::byte fill = std::byte{0});

// One record per row: the int32 dimension then the values.
std::vector<std::byte> fvecs_image(const std::vector<std::vector<float>>& rows);

std::vector<std::byte> as_bytes(const std::string& text);

}  // namespace l2norm::testing

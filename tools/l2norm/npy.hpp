// The NumPy .npy format: magic "\x93NUMPY", version 1.0 (uint16 header length), 2.0 or 3.0
// (uint32 length), then a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': ...}
// padded with spaces and a newline, then the data in C order.
//
// Accepted element types: '<f4' (f32), '<f2' (f16), '<f8' (f64, computed in f32) and, only when
// the caller declares the input bf16, '<V2' or '|V2' (2-byte opaque elements: how arrays of
// ml_dtypes.bfloat16 are saved, since the .npy format has no bfloat16 type). bf16 outputs are
// written with descr '<V2' for the same reason: np.load(...).view(ml_dtypes.bfloat16) recovers
// them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "array_format.hpp"
#include "byte_source.hpp"

namespace l2norm::io {

// Longest header this reader accepts. NumPy itself refuses headers over 10000 bytes by default;
// the limit keeps a hostile length field from costing more than a small allocation.
inline constexpr std::uint64_t kMaxNpyHeaderBytes = std::uint64_t{1} << 20;

// Reads and validates the header of a .npy file: magic, version, header dict, element type,
// C order, shape, and that the file holds exactly shape * itemsize bytes of data after the
// header. `declared` is the element type the user said the data holds (needed for '<V2').
// Throws Error(invalid_argument) "<name>: <what>" for malformed or unsupported files, and
// Error(io) when reading fails. Allocates at most the header length.
ArrayInfo read_npy_info(const ByteSource& source, std::optional<ElementType> declared);

// The bytes that go before the data of an array of `element` with `shape`: version 1.0 when the
// header fits its 16-bit length, else 2.0; padded so the data starts on a 64-byte boundary.
std::vector<std::byte> make_npy_header(ElementType element, std::span<const std::int64_t> shape);

}  // namespace l2norm::io

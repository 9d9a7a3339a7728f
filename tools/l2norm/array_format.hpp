// What the readers and writers agree on: the element types a file may hold, where each row's
// values sit in the file, and the conversions between element types.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l2norm/dtype.hpp"

namespace l2norm::io {

static_assert(std::endian::native == std::endian::little,
              "the .npy and .fvecs readers copy little-endian data as it is");

// Element types a file may store. f64 is read only (computed in f32); the others match DType.
enum class ElementType : std::uint8_t { f32, f16, bf16, f64 };

std::size_t element_size(ElementType type) noexcept;
std::string_view element_name(ElementType type) noexcept;
ElementType element_type_of(DType dtype) noexcept;
// The DType arithmetic runs in for data stored as `type` (f64 is computed in f32).
DType compute_dtype_of(ElementType type) noexcept;

enum class FileFormat : std::uint8_t { npy, fvecs };

std::string_view format_name(FileFormat format) noexcept;
// ".npy" or ".fvecs" (any letter case) at the end of `path`, else nullopt.
std::optional<FileFormat> format_from_extension(std::string_view path) noexcept;

// How rows are laid out in a file: row r's `dim` values start at
// data_offset + r * row_stride + row_prefix (fvecs records begin with a 4-byte dimension).
struct RowLayout {
  ElementType element = ElementType::f32;
  std::int64_t rows = 0;
  std::int64_t dim = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t row_prefix = 0;
  std::uint64_t row_stride = 0;

  std::uint64_t row_value_bytes() const noexcept {
    return static_cast<std::uint64_t>(dim) * element_size(element);
  }
};

// A parsed input file: its format, its shape as stored (fvecs: {rows, dim}) and its row layout.
struct ArrayInfo {
  FileFormat format = FileFormat::npy;
  std::vector<std::int64_t> shape;
  RowLayout layout;
  int npy_major_version = 0;  // 1, 2 or 3 for .npy inputs
};

// "(1000, 384)", "(5,)": the shape as Python prints it.
std::string shape_text(const std::vector<std::int64_t>& shape);

// Converts `count` elements. Narrowing rounds to nearest even and keeps NaN a NaN (f64 values
// beyond the f32 range become infinities); widening is exact.
void convert_elements(ElementType from, const void* source, ElementType to, void* destination,
                      std::size_t count) noexcept;

}  // namespace l2norm::io

// Format-independent row access: open an input of either format, read any range of rows as
// packed values, and lay rows out for an output file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "array_format.hpp"
#include "byte_source.hpp"

namespace l2norm::io {

// Reads the header (.npy) or record structure (.fvecs) of `source`. The format comes from the
// name's extension; a name with neither extension is read as .npy when it starts with the .npy
// magic. `declared` is the user's --in-dtype, if any (.fvecs holds f32 only).
ArrayInfo read_array_info(const ByteSource& source, std::optional<ElementType> declared);

class RowReader {
 public:
  RowReader(const ByteSource& source, const RowLayout& layout) : source_(source), layout_(layout) {}

  // Bytes a buffer must have to receive `count` rows (their file layout, prefixes included).
  std::uint64_t buffer_bytes(std::int64_t count) const noexcept {
    return static_cast<std::uint64_t>(count) * layout_.row_stride;
  }
  // Reads rows [first, first + count) into `buffer` and leaves their values packed at its start:
  // count * dim elements of layout.element. For .fvecs, checks each record's dimension and throws
  // Error(invalid_argument) naming the first record that differs.
  void read_rows(std::int64_t first, std::int64_t count, std::span<std::byte> buffer) const;

 private:
  const ByteSource& source_;
  RowLayout layout_;
};

// The layout of rows in an output file of `format` holding `element` values.
RowLayout output_row_layout(FileFormat format, ElementType element, std::int64_t rows,
                            std::int64_t dim);
// Bytes written before the first row (.npy header; nothing for .fvecs).
std::vector<std::byte> output_header(FileFormat format, ElementType element,
                                     std::span<const std::int64_t> shape);
// Converts `count` packed rows of `values_type` into `layout` (element type and per-row prefix)
// at `destination`, which holds count * layout.row_stride bytes.
void pack_rows(const RowLayout& layout, ElementType values_type, const std::byte* values,
               std::int64_t count, std::byte* destination) noexcept;

}  // namespace l2norm::io

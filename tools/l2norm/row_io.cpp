#include "row_io.hpp"

#include <array>
#include <cstring>
#include <string>

#include "fvecs.hpp"
#include "l2norm/error.hpp"
#include "npy.hpp"

namespace l2norm::io {

namespace {

bool starts_with_npy_magic(const ByteSource& source) {
  constexpr std::array<unsigned char, 6> kMagic = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (source.size() < kMagic.size()) return false;
  std::array<std::byte, kMagic.size()> head{};
  source.read_at(0, head);
  return std::memcmp(head.data(), kMagic.data(), kMagic.size()) == 0;
}

}  // namespace

ArrayInfo read_array_info(const ByteSource& source, std::optional<ElementType> declared) {
  std::optional<FileFormat> format = format_from_extension(source.name());
  if (!format) {
    if (!starts_with_npy_magic(source)) {
      throw Error(ErrorCode::invalid_argument,
                  source.name() +
                      ": unknown input format: the name ends in neither .npy nor "
                      ".fvecs and the file does not start with the .npy magic");
    }
    format = FileFormat::npy;
  }
  if (*format == FileFormat::npy) return read_npy_info(source, declared);
  if (declared && *declared != ElementType::f32) {
    throw Error(ErrorCode::invalid_argument, source.name() + ": --in-dtype " +
                                                 std::string(element_name(*declared)) +
                                                 " does not apply: .fvecs files hold f32 values");
  }
  return read_fvecs_info(source);
}

void RowReader::read_rows(std::int64_t first, std::int64_t count,
                          std::span<std::byte> buffer) const {
  const std::uint64_t bytes = buffer_bytes(count);
  if (first < 0 || count < 0 || first > layout_.rows - count || bytes > buffer.size()) {
    throw Error(ErrorCode::invalid_argument,
                source_.name() + ": cannot read rows [" + std::to_string(first) + ", " +
                    std::to_string(first + count) + ") of " + std::to_string(layout_.rows) +
                    " into a buffer of " + std::to_string(buffer.size()) + " bytes");
  }
  source_.read_at(layout_.data_offset + static_cast<std::uint64_t>(first) * layout_.row_stride,
                  buffer.first(bytes));
  if (layout_.row_prefix == 0) return;
  // Records are compacted front to back: each row's values move to a lower address than any
  // record still to be read, so nothing is overwritten before it is used.
  const std::uint64_t value_bytes = layout_.row_value_bytes();
  for (std::int64_t r = 0; r < count; ++r) {
    const std::byte* record = buffer.data() + static_cast<std::uint64_t>(r) * layout_.row_stride;
    std::int32_t record_dim = 0;
    std::memcpy(&record_dim, record, sizeof record_dim);
    if (record_dim != layout_.dim) {
      throw Error(ErrorCode::invalid_argument,
                  source_.name() + ": inconsistent dimensions: record " +
                      std::to_string(first + r) + " has dimension " + std::to_string(record_dim) +
                      ", record 0 has " + std::to_string(layout_.dim));
    }
    std::memmove(buffer.data() + static_cast<std::uint64_t>(r) * value_bytes,
                 record + layout_.row_prefix, value_bytes);
  }
}

RowLayout output_row_layout(FileFormat format, ElementType element, std::int64_t rows,
                            std::int64_t dim) {
  if (format == FileFormat::fvecs) return fvecs_row_layout(rows, dim);
  RowLayout layout;
  layout.element = element;
  layout.rows = rows;
  layout.dim = dim;
  layout.row_stride = layout.row_value_bytes();
  return layout;
}

std::vector<std::byte> output_header(FileFormat format, ElementType element,
                                     std::span<const std::int64_t> shape) {
  if (format == FileFormat::fvecs) return {};
  return make_npy_header(element, shape);
}

void pack_rows(const RowLayout& layout, ElementType values_type, const std::byte* values,
               std::int64_t count, std::byte* destination) noexcept {
  const auto dim = static_cast<std::size_t>(layout.dim);
  if (layout.row_prefix == 0) {
    convert_elements(values_type, values, layout.element, destination,
                     static_cast<std::size_t>(count) * dim);
    return;
  }
  const auto record_dim = static_cast<std::int32_t>(layout.dim);
  const std::size_t value_bytes = dim * element_size(values_type);
  for (std::int64_t r = 0; r < count; ++r) {
    std::byte* record = destination + static_cast<std::uint64_t>(r) * layout.row_stride;
    std::memcpy(record, &record_dim, sizeof record_dim);
    convert_elements(values_type, values + static_cast<std::size_t>(r) * value_bytes,
                     layout.element, record + layout.row_prefix, dim);
  }
}

}  // namespace l2norm::io

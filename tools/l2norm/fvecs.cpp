#include "fvecs.hpp"

#include <array>
#include <cstring>
#include <string>

#include "l2norm/error.hpp"

namespace l2norm::io {

namespace {

constexpr std::uint64_t kDimFieldBytes = 4;

}  // namespace

ArrayInfo read_fvecs_info(const ByteSource& source) {
  const auto fail = [&source](const std::string& what) {
    return Error(ErrorCode::invalid_argument, source.name() + ": " + what);
  };
  const std::uint64_t file_size = source.size();
  if (file_size == 0) throw fail("empty .fvecs file: no records");
  if (file_size < kDimFieldBytes) {
    throw fail("truncated record: the file holds " + std::to_string(file_size) +
               " bytes, less than one 4-byte dimension field");
  }
  std::array<std::byte, kDimFieldBytes> field{};
  source.read_at(0, field);
  std::int32_t dim = 0;
  std::memcpy(&dim, field.data(), sizeof dim);
  if (dim <= 0) throw fail("record 0 has dimension " + std::to_string(dim) + ", expected > 0");

  ArrayInfo info;
  info.format = FileFormat::fvecs;
  const std::uint64_t record_bytes = kDimFieldBytes + 4 * static_cast<std::uint64_t>(dim);
  if (file_size % record_bytes != 0) {
    throw fail("truncated record: the file size " + std::to_string(file_size) +
               " is not a multiple of the record size " + std::to_string(record_bytes) +
               " (4 + 4 * dim " + std::to_string(dim) + "); the last record is " +
               std::to_string(file_size % record_bytes) +
               " bytes, or the records' dimensions differ");
  }
  const auto rows = static_cast<std::int64_t>(file_size / record_bytes);
  info.shape = {rows, dim};
  info.layout = fvecs_row_layout(rows, dim);
  return info;
}

RowLayout fvecs_row_layout(std::int64_t rows, std::int64_t dim) {
  RowLayout layout;
  layout.element = ElementType::f32;
  layout.rows = rows;
  layout.dim = dim;
  layout.data_offset = 0;
  layout.row_prefix = kDimFieldBytes;
  layout.row_stride = kDimFieldBytes + 4 * static_cast<std::uint64_t>(dim);
  return layout;
}

}  // namespace l2norm::io

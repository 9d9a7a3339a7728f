// libFuzzer target for the .npy reader, parsing from memory. Beyond "no crash, no large
// allocation" (run.sh sets -malloc_limit_mb), it checks that every accepted file's data size
// matches its shape and that the header we would write for it reads back the same way.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "array_format.hpp"
#include "byte_source.hpp"
#include "host_buffer.hpp"
#include "l2norm/error.hpp"
#include "npy.hpp"
#include "row_io.hpp"

namespace {

using namespace l2norm::io;

constexpr std::int64_t kRowsPerRead = 64;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void read_every_row(const ByteSource& source, const ArrayInfo& info) {
  const RowReader reader(source, info.layout);
  const std::int64_t rows_per_read = std::min<std::int64_t>(kRowsPerRead, info.layout.rows);
  HostBuffer file_rows(reader.buffer_bytes(rows_per_read));
  HostBuffer values(static_cast<std::size_t>(rows_per_read * info.layout.dim) * sizeof(float));
  for (std::int64_t first = 0; first < info.layout.rows; first += rows_per_read) {
    const std::int64_t count = std::min(rows_per_read, info.layout.rows - first);
    reader.read_rows(first, count, {file_rows.data(), file_rows.capacity()});
    convert_elements(info.layout.element, file_rows.data(), ElementType::f32, values.data(),
                     static_cast<std::size_t>(count * info.layout.dim));
  }
}

void check_header_round_trip(const ByteSource& source, const ArrayInfo& info,
                             std::optional<ElementType> declared) {
  const std::uint64_t data_bytes = source.size() - info.layout.data_offset;
  require(data_bytes ==
          static_cast<std::uint64_t>(info.layout.rows) * info.layout.row_value_bytes());
  std::vector<std::byte> image = make_npy_header(info.layout.element, info.shape);
  require(image.size() % 64 == 0);
  const std::size_t header_bytes = image.size();
  image.resize(header_bytes + data_bytes);
  source.read_at(info.layout.data_offset, std::span(image).subspan(header_bytes));
  const MemorySource rewritten("rewritten.npy", image);
  const ArrayInfo again = read_npy_info(rewritten, declared);
  require(again.shape == info.shape);
  require(again.layout.element == info.layout.element);
  require(again.layout.data_offset == header_bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const MemorySource source("fuzz.npy", std::as_bytes(std::span(data, size)));
  // Both readings of the input: as the user passes no --in-dtype, and as --in-dtype bf16.
  for (const std::optional<ElementType> declared :
       {std::optional<ElementType>(), std::optional(ElementType::bf16)}) {
    try {
      const ArrayInfo info = read_npy_info(source, declared);
      read_every_row(source, info);
      check_header_round_trip(source, info, declared);
    } catch (const l2norm::Error& error) {
      require(error.code() == l2norm::ErrorCode::invalid_argument);
      require(std::strncmp(error.what(), "fuzz.npy: ", 10) == 0);
    }
  }
  return 0;
}

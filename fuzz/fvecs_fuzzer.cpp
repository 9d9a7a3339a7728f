// libFuzzer target for the .fvecs reader, parsing from memory. An accepted file must read back
// row by row and, packed again as .fvecs, reproduce the input bytes exactly.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "array_format.hpp"
#include "byte_source.hpp"
#include "fvecs.hpp"
#include "host_buffer.hpp"
#include "l2norm/error.hpp"
#include "row_io.hpp"

namespace {

using namespace l2norm::io;

constexpr std::int64_t kRowsPerRead = 16;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> input = std::as_bytes(std::span(data, size));
  const MemorySource source("fuzz.fvecs", input);
  try {
    const ArrayInfo info = read_fvecs_info(source);
    const RowLayout& layout = info.layout;
    const RowReader reader(source, layout);
    const std::int64_t rows_per_read = std::min<std::int64_t>(kRowsPerRead, layout.rows);
    HostBuffer file_rows(reader.buffer_bytes(rows_per_read));
    HostBuffer packed(reader.buffer_bytes(rows_per_read));
    for (std::int64_t first = 0; first < layout.rows; first += rows_per_read) {
      const std::int64_t count = std::min(rows_per_read, layout.rows - first);
      reader.read_rows(first, count, {file_rows.data(), file_rows.capacity()});
      pack_rows(layout, ElementType::f32, file_rows.data(), count, packed.data());
      const std::uint64_t offset = static_cast<std::uint64_t>(first) * layout.row_stride;
      require(std::memcmp(packed.data(), input.data() + offset, reader.buffer_bytes(count)) == 0);
    }
  } catch (const l2norm::Error& error) {
    require(error.code() == l2norm::ErrorCode::invalid_argument);
    require(std::strncmp(error.what(), "fuzz.fvecs: ", 12) == 0);
  }
  return 0;
}

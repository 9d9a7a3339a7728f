#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "byte_source.hpp"
#include "host_buffer.hpp"
#include "normalize.hpp"
#include "row_io.hpp"

namespace l2norm::cli {

FileStats compute_file_stats(const std::string& path, std::optional<io::ElementType> in_dtype,
                             std::uint64_t chunk_bytes, const std::atomic<bool>& stop_requested) {
  const io::FileSource source(path);
  FileStats stats;
  stats.info = io::read_array_info(source, in_dtype);
  const io::RowLayout& layout = stats.info.layout;
  const io::RowReader reader(source, layout);
  const std::int64_t rows_per_chunk = static_cast<std::int64_t>(std::clamp<std::uint64_t>(
      chunk_bytes / std::max<std::uint64_t>(layout.row_stride, 1), 1,
      static_cast<std::uint64_t>(std::max<std::int64_t>(layout.rows, 1))));
  io::HostBuffer file_rows(reader.buffer_bytes(rows_per_chunk));
  io::HostBuffer values(static_cast<std::size_t>(rows_per_chunk * layout.dim) * sizeof(float));

  double norm_sum = 0;
  std::int64_t& finite_rows = stats.finite_rows;
  stats.min_norm = std::numeric_limits<double>::infinity();
  stats.max_norm = 0;
  for (std::int64_t first = 0; first < layout.rows; first += rows_per_chunk) {
    if (stop_requested.load()) throw Interrupted();
    const std::int64_t count = std::min(rows_per_chunk, layout.rows - first);
    reader.read_rows(first, count, {file_rows.data(), file_rows.capacity()});
    // f64 inputs keep their precision; the 16-bit types and f32 widen exactly to f32 first.
    const bool wide = layout.element == io::ElementType::f64;
    if (!wide) {
      io::convert_elements(layout.element, file_rows.data(), io::ElementType::f32, values.data(),
                           static_cast<std::size_t>(count * layout.dim));
    }
    for (std::int64_t r = 0; r < count; ++r) {
      double sum = 0;
      for (std::int64_t i = 0; i < layout.dim; ++i) {
        const std::size_t index = static_cast<std::size_t>(r * layout.dim + i);
        double value;
        if (wide) {
          std::memcpy(&value, file_rows.data() + index * sizeof(double), sizeof(double));
        } else {
          float narrow;
          std::memcpy(&narrow, values.data() + index * sizeof(float), sizeof(float));
          value = narrow;
        }
        sum += value * value;
      }
      const double norm = std::sqrt(sum);
      if (first + r == 0) stats.first_row_norm = norm;
      if (!std::isfinite(norm)) {
        ++stats.nonfinite_rows;
        continue;
      }
      stats.min_norm = std::min(stats.min_norm, norm);
      stats.max_norm = std::max(stats.max_norm, norm);
      norm_sum += norm;
      ++finite_rows;
    }
  }
  if (finite_rows == 0) stats.min_norm = 0;
  stats.mean_norm = finite_rows > 0 ? norm_sum / static_cast<double>(finite_rows) : 0;
  return stats;
}

}  // namespace l2norm::cli

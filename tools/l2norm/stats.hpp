// `l2norm stats FILE`: shape, element type and the distribution of row norms (computed in
// double from the stored values), so a user can check that a normalized file is unit-norm.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "array_format.hpp"

namespace l2norm::cli {

struct FileStats {
  io::ArrayInfo info;
  double min_norm = 0;
  double max_norm = 0;
  double mean_norm = 0;
  double first_row_norm = 0;
  // min/max/mean are over the finite_rows rows whose norm is finite; with none, they are 0 and
  // meaningless. Rows holding a NaN or an infinity are counted in nonfinite_rows.
  std::int64_t finite_rows = 0;
  std::int64_t nonfinite_rows = 0;
};

FileStats compute_file_stats(const std::string& path, std::optional<io::ElementType> in_dtype,
                             std::uint64_t chunk_bytes, const std::atomic<bool>& stop_requested);

}  // namespace l2norm::cli

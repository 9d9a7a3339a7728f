// The .fvecs format of ANN benchmark sets (SIFT1M, GIST1M): a sequence of records, each an int32
// little-endian dimension followed by that many float32 values. Every record has the same
// dimension; there is no header, so the row count is the file size over the record size.
#pragma once

#include <cstdint>

#include "array_format.hpp"
#include "byte_source.hpp"

namespace l2norm::io {

// Validates what can be checked without reading every record: a positive first dimension and a
// file size that is a whole number of records. Each later record's dimension is checked as the
// rows are read (see RowReader). Throws Error(invalid_argument) "<name>: <what>".
ArrayInfo read_fvecs_info(const ByteSource& source);

// The layout fvecs output uses for rows of `dim` float32 values.
RowLayout fvecs_row_layout(std::int64_t rows, std::int64_t dim);

}  // namespace l2norm::io

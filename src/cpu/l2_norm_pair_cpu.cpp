// l2_norm_pair on the CPU: the rows of both targets, first then second, in one pass over the
// thread pool. Each row is normalized by l2_norm's own row code (cpu/l2_norm_cpu.hpp), so each
// target comes out bitwise what its l2_norm call writes.
#include <algorithm>
#include <cstdint>
#include <string>

#include "core/backend.hpp"
#include "cpu/l2_norm_cpu.hpp"
#include "cpu/row_schedule.hpp"
#include "ops/l2_norm_pair_call.hpp"

namespace l2norm::detail::cpu {

std::string run(Backend, EncoderImpl&, const L2NormPairCall& call) {
  const std::int64_t first_bytes = l2_norm_job_bytes(call.first);
  const std::int64_t second_bytes = l2_norm_job_bytes(call.second);
  const std::int64_t job_bytes =
      first_bytes > INT64_MAX - second_bytes ? INT64_MAX : first_bytes + second_bytes;
  const bool first_streams = l2_norm_streams(call.first, job_bytes);
  const bool second_streams = l2_norm_streams(call.second, job_bytes);
  const std::int64_t first_rows = call.first.rows;
  for_each_row_range(
      first_rows + call.second.rows, job_bytes, [&](std::int64_t row_begin, std::int64_t row_end) {
        if (row_begin < first_rows) {
          normalize_row_range(call.first, first_streams, row_begin, std::min(row_end, first_rows));
        }
        if (row_end > first_rows) {
          normalize_row_range(call.second, second_streams,
                              std::max(row_begin, first_rows) - first_rows, row_end - first_rows);
        }
      });
  return "cpu.l2_norm_pair<" + l2_norm_variant_name(call.first, first_streams) + "," +
         l2_norm_variant_name(call.second, second_streams) + ">";
}

}  // namespace l2norm::detail::cpu

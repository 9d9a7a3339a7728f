// How a CPU op's rows are spread over the thread pool and walked, whatever the op does with them.
// Rows are independent, so neither the split nor the thread count changes a bit of any result.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

#include "cpu/thread_pool.hpp"
#include "ops/rows.hpp"

namespace l2norm::detail::cpu {

// Below this many bytes moved a job runs on the calling thread: waking a worker costs more.
constexpr std::int64_t kMinBytesPerPart = std::int64_t{128} << 10;
// Runs of rows handed out per thread: enough to even out a thread that is slowed down.
constexpr std::int64_t kRunsPerThread = 16;

// Calls run_rows(row_begin, row_end) on ranges that cover [0, rows) exactly once, on the calling
// thread and the global pool's workers, and returns when all have finished. `job_bytes` (bytes
// read plus written) decides how many threads are worth waking. run_rows must be safe to call
// concurrently on disjoint ranges.
template <class RunRows>
void for_each_row_range(std::int64_t rows, std::int64_t job_bytes, const RunRows& run_rows) {
  ThreadPool& pool = ThreadPool::global();
  const std::int64_t useful_parts =
      std::min({std::int64_t{pool.thread_count()}, rows,
                std::max<std::int64_t>(1, job_bytes / kMinBytesPerPart)});
  if (useful_parts <= 1) {
    run_rows(0, rows);
    return;
  }
  // Threads take contiguous runs of rows from a shared counter rather than one fixed share each:
  // on a machine shared with other work, a thread that loses its core does not hold the whole
  // job back.
  const std::int64_t run_length = std::max<std::int64_t>(1, rows / (useful_parts * kRunsPerThread));
  const std::int64_t runs = (rows + run_length - 1) / run_length;
  std::atomic<std::int64_t> next_run{0};
  pool.run(static_cast<int>(useful_parts), [&](int, int) {
    for (;;) {
      const std::int64_t run = next_run.fetch_add(1, std::memory_order_relaxed);
      if (run >= runs) return;
      const std::int64_t row_begin = run * run_length;
      run_rows(row_begin, std::min(rows, row_begin + run_length));
    }
  });
}

// Walks rows in order, keeping the element offsets of the current row up to date without a
// division per row.
class RowCursor {
 public:
  RowCursor(const RowLayout& layout, std::int64_t row)
      : layout_(layout),
        input_offset_(row_offset(layout, layout.input_strides, row)),
        output_offset_(row_offset(layout, layout.output_strides, row)) {
    for (int i = layout.outer_rank - 1; i >= 0; --i) {
      const std::int64_t size = layout.outer_sizes[std::size_t(i)];
      index_[std::size_t(i)] = row % size;
      row /= size;
    }
  }

  std::int64_t input_offset() const { return input_offset_; }
  std::int64_t output_offset() const { return output_offset_; }

  void advance() {
    for (int i = layout_.outer_rank - 1; i >= 0; --i) {
      const auto axis = std::size_t(i);
      input_offset_ += layout_.input_strides[axis];
      output_offset_ += layout_.output_strides[axis];
      if (++index_[axis] < layout_.outer_sizes[axis]) return;
      input_offset_ -= layout_.outer_sizes[axis] * layout_.input_strides[axis];
      output_offset_ -= layout_.outer_sizes[axis] * layout_.output_strides[axis];
      index_[axis] = 0;
    }
  }

 private:
  const RowLayout& layout_;
  std::array<std::int64_t, kMaxOuterRank> index_{};
  std::int64_t input_offset_;
  std::int64_t output_offset_;
};

}  // namespace l2norm::detail::cpu

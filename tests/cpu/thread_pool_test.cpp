// The CPU backend's worker pool: every piece of a job's work is done exactly once, by the caller
// and the workers that join while the job is open; a worker that wakes after the caller's part
// returned never runs the task; failures reach the caller; the pool survives resizing.
#include "cpu/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu/row_schedule.hpp"

namespace l2norm::detail::cpu {
namespace {

// A job's work as the pool's users share it: units taken from a counter until none is left.
struct Units {
  explicit Units(int count) : done(static_cast<std::size_t>(count)) {}
  void drain() {
    for (;;) {
      const int unit = next.fetch_add(1);
      if (unit >= static_cast<int>(done.size())) return;
      done[static_cast<std::size_t>(unit)].fetch_add(1);
    }
  }
  std::atomic<int> next{0};
  std::vector<std::atomic<int>> done;
};

TEST(CpuThreadPool, EveryUnitOfEveryJobRunsExactlyOnce) {
  ThreadPool pool;
  for (const int threads : {1, 2, 3, 8}) {
    pool.set_thread_count(threads);
    for (int job = 0; job < 200; ++job) {
      Units units(1 + (job * 37) % 300);
      pool.run(1 + job % 9, [&](int part, int parts) {
        EXPECT_GE(part, 0);
        EXPECT_LT(part, parts);
        EXPECT_LE(parts, threads);
        units.drain();
      });
      for (const auto& count : units.done) ASSERT_EQ(count.load(), 1) << "job " << job;
    }
  }
}

TEST(CpuThreadPool, WorkersJoinAnOpenJob) {
  // The caller's part waits until the worker's part has started: the job finishes only because a
  // worker joins it while the caller's part is still running.
  ThreadPool pool;
  pool.set_thread_count(2);
  std::atomic<bool> worker_started{false};
  pool.run(2, [&](int part, int) {
    if (part == 1) {
      worker_started = true;
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!worker_started && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  });
  EXPECT_TRUE(worker_started);
}

TEST(CpuThreadPool, ALateWorkerNeverRunsAClosedJob) {
  // Each job's task stays alive after its run() returns and is marked finished then: a worker that
  // woke late and ran it anyway would see the mark.
  ThreadPool pool;
  pool.set_thread_count(4);
  std::vector<std::unique_ptr<std::atomic<bool>>> finished;
  std::vector<std::unique_ptr<ThreadPool::Task>> tasks;
  std::atomic<int> late_calls{0};
  for (int job = 0; job < 2000; ++job) {
    finished.push_back(std::make_unique<std::atomic<bool>>(false));
    std::atomic<bool>* mark = finished.back().get();
    tasks.push_back(std::make_unique<ThreadPool::Task>([mark, &late_calls](int, int) {
      if (mark->load()) late_calls.fetch_add(1);
    }));
    pool.run(4, *tasks.back());
    mark->store(true);
  }
  pool.set_thread_count(1);  // joins the workers: every call they were going to make is made
  EXPECT_EQ(late_calls.load(), 0);
}

TEST(CpuThreadPool, AWorkersFailureReachesTheCaller) {
  ThreadPool pool;
  pool.set_thread_count(2);
  std::atomic<bool> worker_threw{false};
  for (int attempt = 0; attempt < 100 && !worker_threw; ++attempt) {
    std::atomic<bool> worker_started{false};
    try {
      pool.run(2, [&](int part, int) {
        if (part == 1) {
          worker_started = true;
          throw std::runtime_error("worker part failed");
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!worker_started && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::yield();
        }
      });
    } catch (const std::runtime_error& error) {
      EXPECT_STREQ(error.what(), "worker part failed");
      worker_threw = true;
    }
  }
  EXPECT_TRUE(worker_threw);
  // The pool still runs jobs after a failure.
  Units units(1000);
  pool.run(2, [&](int, int) { units.drain(); });
  for (const auto& count : units.done) ASSERT_EQ(count.load(), 1);
}

TEST(CpuThreadPool, RowRangesCoverEveryRowOnceWhateverTheJobSize) {
  for (const std::int64_t rows :
       {std::int64_t{1}, std::int64_t{7}, std::int64_t{1000}, std::int64_t{100003}}) {
    for (const std::int64_t job_bytes :
         {std::int64_t{64}, std::int64_t{1} << 20, std::int64_t{1} << 30}) {
      std::vector<std::atomic<int>> seen(static_cast<std::size_t>(rows));
      for_each_row_range(rows, job_bytes, [&](std::int64_t begin, std::int64_t end) {
        ASSERT_LT(begin, end);
        for (std::int64_t row = begin; row < end; ++row) {
          seen[static_cast<std::size_t>(row)].fetch_add(1);
        }
      });
      for (const auto& count : seen) ASSERT_EQ(count.load(), 1) << rows << " rows";
    }
  }
}

}  // namespace
}  // namespace l2norm::detail::cpu

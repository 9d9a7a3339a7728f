// The CPU backend's persistent worker pool. One job runs at a time: the calling thread takes part 0
// and the workers that wake while the job is still open take the others, so a job never waits for
// a thread to be created nor for one to be scheduled.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace l2norm::detail::cpu {

class ThreadPool {
 public:
  // The process-wide pool, sized by set_cpu_thread_count / $L2NORM_NUM_THREADS.
  static ThreadPool& global();

  ThreadPool();
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads a job may use, the caller included.
  int thread_count() const;
  // n < 1 restores the default. Waits for a running job to finish first.
  void set_thread_count(int n);

  // Runs task(0, parts_run) on the calling thread and task(part, parts_run), part in
  // [1, parts_run), on each worker that wakes before the caller's own part returns; returns when
  // every part that started has finished. parts_run is `parts` clamped to [1, threads available].
  // A part may not run at all (its worker woke after the caller's part returned), so a task shares
  // its work through a counter the parts drain, and the caller's part drains it to the end: no
  // piece of work may belong to one part alone. Concurrent callers are served one after the other.
  using Task = std::function<void(int part, int parts_run)>;
  void run(int parts, const Task& task);

 private:
  void start_workers();
  void stop_workers();
  void worker_loop(int worker_index, std::uint64_t seen_generation);

  std::mutex job_mutex_;  // held for the whole of one job, and while resizing
  // Guards everything below; thread_count_ is also stable while job_mutex_ is held.

  mutable std::mutex state_mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  int thread_count_ = 1;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::uint64_t generation_ = 0;
  int job_parts_ = 0;
  bool job_open_ = false;  // workers may still join the job
  int parts_running_ = 0;  // workers that joined the job and have not finished their part
  const Task* job_task_ = nullptr;
  std::exception_ptr job_failure_;  // the first exception a worker's part threw
};

}  // namespace l2norm::detail::cpu

#include "cpu/thread_pool.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <system_error>

#include "l2norm/device.hpp"

namespace l2norm::detail::cpu {
namespace {

// Far above any sensible value; keeps a typo in $L2NORM_NUM_THREADS from spawning millions.
constexpr int kMaxThreads = 1024;

int default_thread_count() noexcept {
  if (const char* text = std::getenv("L2NORM_NUM_THREADS")) {
    const std::string_view view(text);
    int value = 0;
    const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
    if (error == std::errc() && end == view.data() + view.size() && value >= 1) {
      return std::min(value, kMaxThreads);
    }
  }
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(std::min(hardware, unsigned{kMaxThreads}));
}

}  // namespace

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool() : thread_count_(default_thread_count()) {}

ThreadPool::~ThreadPool() {
  stop_workers();
}

int ThreadPool::thread_count() const {
  const std::lock_guard lock(state_mutex_);
  return thread_count_;
}

void ThreadPool::set_thread_count(int n) {
  const std::lock_guard job_lock(job_mutex_);
  stop_workers();
  const std::lock_guard lock(state_mutex_);
  thread_count_ = n < 1 ? default_thread_count() : std::min(n, kMaxThreads);
}

void ThreadPool::start_workers() {
  const auto wanted = static_cast<std::size_t>(thread_count_ - 1);
  std::uint64_t current_generation = 0;
  {
    const std::lock_guard lock(state_mutex_);
    current_generation = generation_;
  }
  // A pool that cannot create all its threads still works, with the threads it has: the split of
  // rows never changes results, only speed.
  try {
    while (workers_.size() < wanted) {
      const int worker_index = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, worker_index, current_generation] {
        worker_loop(worker_index, current_generation);
      });
    }
  } catch (const std::system_error&) {
  }
}

void ThreadPool::stop_workers() {
  {
    const std::lock_guard lock(state_mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  const std::lock_guard lock(state_mutex_);
  stopping_ = false;
}

void ThreadPool::worker_loop(int worker_index, std::uint64_t seen_generation) {
  std::unique_lock lock(state_mutex_);
  for (;;) {
    work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
    if (stopping_) return;
    seen_generation = generation_;
    if (!job_open_ || worker_index >= job_parts_) continue;
    ++parts_running_;
    const Task* task = job_task_;
    const int parts = job_parts_;
    lock.unlock();
    std::exception_ptr failure;
    try {
      (*task)(worker_index, parts);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure && !job_failure_) job_failure_ = failure;
    if (--parts_running_ == 0 && !job_open_) work_done_.notify_one();
  }
}

void ThreadPool::run(int parts, const Task& task) {
  const std::lock_guard job_lock(job_mutex_);
  parts = std::clamp(parts, 1, thread_count_);
  if (parts == 1) {
    task(0, 1);
    return;
  }
  if (workers_.size() + 1 < static_cast<std::size_t>(thread_count_)) start_workers();
  parts = std::min(parts, static_cast<int>(workers_.size()) + 1);
  {
    const std::lock_guard lock(state_mutex_);
    job_task_ = &task;
    job_parts_ = parts;
    job_open_ = true;
    parts_running_ = 0;
    job_failure_ = nullptr;
    ++generation_;
  }
  work_ready_.notify_all();

  std::exception_ptr failure;
  try {
    task(0, parts);
  } catch (...) {
    failure = std::current_exception();
  }
  // The caller's part returns once the job's work is all taken: a worker that wakes later has
  // nothing to do, so it is not waited for. Only the parts already running are.
  std::unique_lock lock(state_mutex_);
  job_open_ = false;
  work_done_.wait(lock, [&] { return parts_running_ == 0; });
  job_task_ = nullptr;
  if (!failure) failure = job_failure_;
  job_failure_ = nullptr;
  lock.unlock();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace l2norm::detail::cpu

namespace l2norm {

void set_cpu_thread_count(int n) {
  detail::cpu::ThreadPool::global().set_thread_count(n);
}

int cpu_thread_count() noexcept {
  return detail::cpu::ThreadPool::global().thread_count();
}

}  // namespace l2norm

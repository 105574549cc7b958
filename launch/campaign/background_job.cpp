#include "launch/campaign/background_job.h"

#include <utility>

namespace flexnas {

BackgroundJob::BackgroundJob() : thread_([this] { loop(); }) {}

BackgroundJob::~BackgroundJob() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool BackgroundJob::try_start(std::function<void()> job) {
  std::unique_lock<std::mutex> lock(mutex_);
  rethrow_locked(lock);
  if (job_) return false;
  job_ = std::move(job);
  lock.unlock();
  cv_.notify_all();
  return true;
}

void BackgroundJob::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return !job_; });
  rethrow_locked(lock);
}

void BackgroundJob::rethrow_locked(std::unique_lock<std::mutex>&) {
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void BackgroundJob::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || job_; });
    if (!job_) return;  // stopping and idle
    lock.unlock();
    std::exception_ptr error;
    try {
      // Run in place, not a copy (its captures hold a snapshot): nothing replaces job_ while it
      // is set, and the other threads only test it.
      job_();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error ? error : error_;
    job_ = nullptr;
    cv_.notify_all();
  }
}

}  // namespace flexnas

#pragma once
// One job at a time on a background thread. The scheduler hands its periodic file writes (library
// performances, report pages) to it: a 0.5 MB library save with fsync takes 3-20 ms, and during
// that time every worker that finishes a 50 ms trial waits for its next one.
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace flexnas {

class BackgroundJob {
 public:
  BackgroundJob();
  ~BackgroundJob();  // waits for the job in progress; what it threw is dropped
  BackgroundJob(const BackgroundJob&) = delete;
  BackgroundJob& operator=(const BackgroundJob&) = delete;

  /// Starts `job` unless the previous one is still running (false then: try again later). Rethrows
  /// what the previous job threw, so a failed write is not silent.
  bool try_start(std::function<void()> job);
  /// Waits until no job runs; rethrows what the last one threw.
  void wait();

 private:
  void loop();
  void rethrow_locked(std::unique_lock<std::mutex>& lock);

  std::mutex mutex_;
  std::condition_variable cv_;
  std::function<void()> job_;  // set while a job is pending or running
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;  // last: started after the members it uses
};

}  // namespace flexnas

#include "launch/campaign/worker_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "design_space/error.h"

namespace flexnas::launch {

namespace {

class LocalPool : public WorkerPool {
 public:
  LocalPool(std::shared_ptr<Evaluator> evaluator, int workers) : evaluator_(std::move(evaluator)), slots_(workers) {
    for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { loop(w); });
  }
  ~LocalPool() override { shutdown(); }

  int size() const override { return int(slots_.size()); }
  bool alive(int) const override { return true; }

  void start(int worker, const TrialTask& task) override {
    std::lock_guard<std::mutex> lock(mutex_);
    Slot& s = slots_[size_t(worker)];
    FLEXNAS_CHECK(!s.task && !s.busy, "worker ", worker, " is busy");
    s.cancel = false;
    s.task = task;
    s.busy = true;
    s.wake.notify_one();  // only this worker (one condition variable for all woke every thread)
  }

  std::vector<PoolEvent> wait(double seconds) override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return !events_.empty(); });
    std::vector<PoolEvent> out(events_.begin(), events_.end());
    events_.clear();
    return out;
  }

  void cancel_all() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Slot& s : slots_) s.cancel = true;
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      for (Slot& s : slots_) {
        s.cancel = true;
        s.wake.notify_one();
      }
    }
    for (std::thread& t : threads_) t.join();
  }

 private:
  struct Slot {
    std::optional<TrialTask> task;
    bool busy = false;
    std::atomic<bool> cancel{false};
    std::condition_variable wake;  // a task or shutdown for this worker
  };

  void loop(int w) {
    const int gpus = count_gpus();
    for (;;) {
      TrialTask task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        slots_[size_t(w)].wake.wait(lock, [&] { return stopping_ || slots_[size_t(w)].task.has_value(); });
        if (stopping_ && !slots_[size_t(w)].task) return;
        task = *slots_[size_t(w)].task;
        slots_[size_t(w)].task.reset();
      }
      if (gpus > 0) task.gpu = w % gpus;
      PoolEvent e;
      e.worker = w;
      try {
        e.outcome = evaluator_->evaluate(task, &slots_[size_t(w)].cancel, {});
      } catch (const std::exception& ex) {  // the worker survives whatever the trial does
        e.outcome.trial_id = task.trial_id;
        e.outcome.attempt = task.attempt;
        e.outcome.reason = std::string("evaluator error: ") + ex.what();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      slots_[size_t(w)].busy = false;
      events_.push_back(std::move(e));
      done_cv_.notify_one();  // the scheduler is the only waiter
      if (stopping_) return;
    }
  }

  std::shared_ptr<Evaluator> evaluator_;
  std::vector<Slot> slots_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  std::deque<PoolEvent> events_;
  bool stopping_ = false;
};

}  // namespace

std::unique_ptr<WorkerPool> make_local_pool(std::shared_ptr<Evaluator> evaluator, int workers) {
  return std::make_unique<LocalPool>(std::move(evaluator), workers);
}

}  // namespace flexnas::launch

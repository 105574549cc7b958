#pragma once
// The workers as the scheduler sees them: local threads in this process (make_local_pool; table
// look-ups run in the thread, command/builtin trials in child processes) or MPI ranks
// (mpi_runner.cpp's pool).
#include <memory>
#include <string>
#include <vector>

#include "launch/evaluators/evaluator.h"

namespace flexnas::launch {

/// Something that happened on a worker.
struct PoolEvent {
  enum Kind { kResult, kLost } kind = kResult;
  int worker = -1;
  TrialOutcome outcome;   // kResult
  std::string reason;     // kLost
};

/// The workers as the scheduler sees them (local threads or MPI ranks).
class WorkerPool {
 public:
  virtual ~WorkerPool() = default;
  virtual int size() const = 0;
  /// Worker id as stored in the database (thread number, or MPI rank).
  virtual int worker_label(int worker) const { return worker; }
  virtual bool alive(int worker) const = 0;
  /// Starts one attempt on an idle, alive worker.
  virtual void start(int worker, const TrialTask& task) = 0;
  /// Events that arrived, waiting up to `seconds` for the first one.
  virtual std::vector<PoolEvent> wait(double seconds) = 0;
  /// Asks every busy worker to stop its attempt (drain timeout); they report cancelled outcomes.
  virtual void cancel_all() = 0;
  /// Tells the workers to exit (after the last result).
  virtual void shutdown() = 0;
};

/// `workers` threads sharing one evaluator.
std::unique_ptr<WorkerPool> make_local_pool(std::shared_ptr<Evaluator> evaluator, int workers);

}  // namespace flexnas::launch

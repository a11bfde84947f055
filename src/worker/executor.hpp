// A worker's executor threads: run ready tasks by priority within the declared resources.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <dtask/plugin_abi.h>
#include <dtask/task.hpp>

#include "protocol/messages.hpp"
#include "worker/running_board.hpp"
#include "worker/telemetry.hpp"

namespace dtask::worker {

// The id of a job that is no task of the scheduler's (an early start, early_start.hpp): the
// executor does not record its run (the ComputeTask that adopts its result does).
inline constexpr protocol::TaskId kNoTask{~std::uint64_t{0}};

// One runnable task: the plugin entry and its arguments, which the job keeps alive while it runs.
struct Job {
  protocol::TaskId id;
  std::int32_t priority = 0;
  const dtask_task_v1* entry = nullptr;
  std::vector<std::shared_ptr<const Payload>> keep;  // payloads the args point into
  std::vector<detail::CallArg> args;
  protocol::Resources resources;
};

struct Completion {
  protocol::TaskId id;
  bool ok = false;
  Payload result;
  std::string error;
  const dtask_task_v1* entry = nullptr;
  std::uint64_t run_ns = 0;  // how long the task function ran
  std::uint64_t start_us = 0;  // when it started: wall clock, microseconds since the epoch
  std::uint32_t thread = 0;    // which thread ran it: executor thread i, or nthreads for run_here()
};

class Executor {
 public:
  // `on_complete` runs on an executor thread after each task (the worker wakes its loop there).
  // `board` (may be null): executor thread i marks slot i while it runs a task, run_here() slot
  // nthreads (running_board.hpp); its supervisor reads it if this process dies.
  // `telemetry` (may be null): every run but kNoTask's is recorded there, on the thread that ran it.
  Executor(int nthreads, protocol::Resources available, std::string worker_name, std::function<void()> on_complete,
           std::shared_ptr<RunningBoard> board = nullptr, std::shared_ptr<TelemetryRecorder> telemetry = nullptr);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void submit(Job job);
  // Removes a job that has not started (steal, release); false if it is running or gone.
  bool withdraw(protocol::TaskId id);
  std::vector<Completion> take_completions();
  std::size_t queued() const;
  // Paused: no queued job starts (a running one finishes); the worker pauses when its memory is
  // over the pause threshold (memory_policy.hpp).
  void pause(bool paused);
  // Nothing queued and nothing running.
  bool idle() const;
  // Runs a job on the calling thread (the worker's loop, for a task known to take microseconds:
  // two thread hand-offs cost more than the task). It takes one of the nthreads places while it
  // runs, so no more than nthreads tasks ever run at once.
  Completion run_here(Job job);
  // A run_here() whose thread no longer runs the worker's loop hands its result in here, like
  // an executor thread would.
  void complete_elsewhere(Completion c);
  // Stops taking work; waits up to `grace` for running tasks, then leaves them behind. Returns
  // false when it left some behind: their detached threads still use this object, so its owner
  // must not destroy it (the worker leaks it on purpose; its process is about to end).
  bool shutdown(std::chrono::milliseconds grace);

 private:
  void run(std::size_t slot);
  Completion invoke(Job& job, std::size_t slot);
  bool fits(const Job& j) const;
  struct Order {
    std::int32_t priority;
    std::uint64_t seq;
    bool operator<(const Order& o) const { return priority != o.priority ? priority > o.priority : seq < o.seq; }
  };
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<Order, Job> ready_;
  std::unordered_map<std::uint64_t, Order> index_;  // task id -> position in ready_
  std::map<std::string, double> available_;
  std::deque<Completion> completions_;
  std::function<void()> on_complete_;
  std::string worker_name_;
  int nthreads_ = 1;
  std::uint64_t seq_ = 0;
  bool stop_ = false;
  bool paused_ = false;
  int running_ = 0;
  std::condition_variable idle_cv_;
  std::vector<std::thread> threads_;
  bool left_behind_ = false;  // shutdown detached threads still running tasks
  std::shared_ptr<RunningBoard> board_;  // never null (a private one without a supervisor)
  std::shared_ptr<TelemetryRecorder> telemetry_;  // null: runs are not recorded
};

}  // namespace dtask::worker

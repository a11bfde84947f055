// Fast path "loop takeover": a standby thread takes the event loop over from a task that holds it.
//
// Purpose: running a quick task on the loop thread (quick_runs.hpp) is safe only if the loop goes
//   on when that task turns out slow: heartbeats and data requests must keep being answered, or
//   the scheduler declares the worker dead.
// Inputs: the loop thread's begin_run/end_run around each task it runs; the standby thread's
//   look every kTakeoverPeriod.
// Action: ownership of the loop is a named state, LoopOwner, with a run generation (the number
//   of the run going on). begin_run: loop_thread -> task_running_here (generation + 1). end_run:
//   task_running_here -> loop_thread, unless the standby took it. A look that sees the same run
//   going on as the previous look (so it has had the loop for one to two periods) moves it to
//   `standby`: the standby thread runs the loop from then on, for good, and the old thread,
//   when its task ends, hands the completion to the executor (ExecutorOnLoop::run_here returns
//   nullopt) and leaves. Whoever wins the compare-exchange owns the loop; there is no lock.
// Caveats: once taken over, no task runs on the loop thread any more. The standby thread starts
//   with the first run on the loop thread, so with FastPaths::run_on_loop off there is none. An
//   early start whose run outlasts the takeover is lost (its completion lands on no task; the
//   ComputeTask runs it again).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "worker/executor.hpp"
#include "worker/worker_state.hpp"

namespace dtask::worker {

// The standby thread looks this often; a task on the loop thread for one to two periods loses it.
inline constexpr std::chrono::milliseconds kTakeoverPeriod{50};

enum class LoopOwner : std::uint8_t {
  loop_thread,        // the thread that called Worker::run() runs the loop
  task_running_here,  // ...and is inside a task (run generation `run`)
  standby,            // the standby thread took the loop over, for good
};

class LoopTakeover {
 public:
  struct Ownership {
    LoopOwner owner = LoopOwner::loop_thread;
    std::uint64_t run = 0;  // generation: how many runs on the loop thread began
  };
  explicit LoopTakeover(std::shared_ptr<spdlog::logger> log = nullptr) : log_(std::move(log)) {}
  ~LoopTakeover();
  LoopTakeover(const LoopTakeover&) = delete;
  LoopTakeover& operator=(const LoopTakeover&) = delete;

  // ---- the loop thread, around a task it runs ----
  std::uint64_t begin_run();
  // True if this thread still owns the loop; false if the standby thread took it over.
  bool end_run(std::uint64_t run);
  bool taken() const { return unpack(state_.load()).owner == LoopOwner::standby; }
  Ownership ownership() const { return unpack(state_.load()); }

  // ---- the standby thread ----
  // One look: takes the loop over (true) if the run going on was going on at the previous look.
  bool look();
  // Starts the standby thread once (later calls do nothing); it runs `run_loop` if it takes over.
  void start_standby(const std::function<int()>& run_loop);
  // From the thread that called Worker::run(), after its loop ended or was lost: if the loop
  // moved, waits for it to end on the standby thread and returns its code. Stops and joins the
  // standby thread either way.
  std::optional<int> finish(bool loop_moved);

 private:
  static std::uint64_t pack(Ownership o) { return o.run << 2 | static_cast<std::uint64_t>(o.owner); }
  static Ownership unpack(std::uint64_t v) { return {static_cast<LoopOwner>(v & 3), v >> 2}; }
  void standby_main(const std::function<int()>& run_loop);

  std::shared_ptr<spdlog::logger> log_;
  std::atomic<std::uint64_t> state_{0};  // the packed Ownership: who runs the loop
  std::uint64_t seen_ = ~std::uint64_t{0};  // the standby's previous look (only it touches this)
  std::thread thread_;                     // the standby thread (joinable once started)
  std::mutex mutex_;                       // guards stop_ and result_
  std::condition_variable cv_;
  bool stop_ = false;
  std::optional<int> result_;  // the loop's end code, if it ran on the standby thread
};

// The ExecutorPort of the real loop: the Executor, with runs on the loop thread watched by the
// takeover's standby thread.
class ExecutorOnLoop final : public ExecutorPort {
 public:
  ExecutorOnLoop(Executor& exec, LoopTakeover& takeover, std::function<int()> run_loop)
      : exec_(exec), takeover_(takeover), run_loop_(std::move(run_loop)) {}
  bool idle() const override { return exec_.idle(); }
  bool withdraw(TaskId id) override { return exec_.withdraw(id); }
  bool can_run_here() const override { return !takeover_.taken(); }
  void set_paused(bool paused) override { exec_.pause(paused); }
  std::optional<Completion> run_here(Job job) override;

 private:
  Executor& exec_;
  LoopTakeover& takeover_;
  std::function<int()> run_loop_;  // what the standby thread runs if it takes over
};

}  // namespace dtask::worker

// Fast path "early start": a client's StartTask runs here at once, before the scheduler places it.
//
// Purpose: a submit-result loop of tiny tasks costs two network hops per round trip instead of
//   three: the client asks one of the workers that pushed it results (in turns: client
//   EarlyTargets, so a loop spreads over the workers) to start the task now
//   (protocol::StartTask) and tells the scheduler a little later (TaskSpec::early_nonce); the
//   scheduler, still in charge, usually places the task here, and this worker then uses the
//   result it already has instead of running it again.
// Inputs: StartTasks from clients (queued by WorkerState::handle_request, decided at the pass's
//   start_ready), ComputeTasks carrying early_nonce (adopt), refused pushes of early results.
// Action: WorkerState::start_early (early_start.cpp) runs a StartTask on the loop thread if this
//   worker is welcomed, has nothing else to do, and the function is quick (quick_runs.hpp); a
//   small, successful result is remembered by nonce and pushed to the client (ResultPushed,
//   early). Anything else is answered NotStarted, so the client tells the scheduler at once.
//   WorkerState::adopt_early takes a remembered result for a ComputeTask with the same nonce and
//   key: TaskDone without a run, held like any pushed result's when that client had it pushed. A
//   ComputeTask that comes first leaves its nonce remembered, so the late StartTask is ignored.
// Caveats: at most kEarlyRemembered nonces are remembered, the oldest forgotten first (its task
//   then runs again when the ComputeTask comes). A failed or big result is not kept (NotStarted;
//   the ComputeTask runs it again and reports it). It needs the loop thread: with
//   FastPaths::run_on_loop off no StartTask runs. Switched off (FastPaths::early_start = false)
//   every StartTask is answered NotStarted and nothing is adopted.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <dtask/codec.hpp>

namespace dtask::worker {

// Early starts remembered at once, results of at most kInlineResultBytes each: a client starts
// about one per round trip and the scheduler adopts them within kEarlyHoldMs, so this covers
// 200,000 round trips a second; the oldest is forgotten first (and then run again).
inline constexpr std::size_t kEarlyRemembered = 1024;

class EarlyStarts {
 public:
  struct Early {
    std::string key;
    std::shared_ptr<const Payload> result;  // null: its ComputeTask came first
    std::string pushed_to;                  // the client it was pushed to, unless that push was refused
    // The run, for the telemetry of the ComputeTask that adopts it (the run had no task id yet).
    std::uint64_t start_us = 0, run_us = 0;
    std::uint32_t thread = 0;
  };
  explicit EarlyStarts(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // This nonce was run, or its ComputeTask came first: a (late or repeated) StartTask is ignored.
  bool known(std::uint64_t nonce) const { return early_.count(nonce) != 0; }
  // For a ComputeTask with this nonce and key: the early result, forgotten here; nullopt if there
  // is none for this key, and the nonce is then remembered so that a later StartTask is ignored.
  std::optional<Early> adopt(std::uint64_t nonce, const std::string& key);
  // A StartTask ran and its result was pushed to `pushed_to`; returns its record.
  Early& ran(std::uint64_t nonce, std::string key, std::shared_ptr<const Payload> result, std::string pushed_to);
  // The push of this nonce's result was refused: its client does not have it.
  void push_refused(std::uint64_t nonce);
  std::size_t size() const { return early_.size(); }

 private:
  Early& remember(std::uint64_t nonce);
  bool enabled_;
  std::unordered_map<std::uint64_t, Early> early_;
  std::deque<std::uint64_t> order_;  // insertion order, for forgetting the oldest
};

}  // namespace dtask::worker

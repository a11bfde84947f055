// Fast path "held TaskDone": the TaskDones of pushed results, held back for the client's receipt.
//
// Purpose: once a small result was pushed to the client waiting for it (pushed_results.hpp), that
//   client's receipt (protocol::ResultsReceived, riding on its next message) usually tells the
//   scheduler first; the worker's own TaskDone would be one more message for the scheduler to
//   handle in a submit-result loop. So it is held back a little (see ComputeTask::push_to).
// Inputs: a finished task's TaskDone and how many pushes of its result went out (hold); a push
//   the data socket refused (refused); the scheduler's ReleaseTasks (release); each pass's end,
//   with the time and whether other messages leave for the scheduler now (take_due).
// Action: holds a TaskDone until, from the first held one, kPushedDoneDelayMs pass, or any other
//   message leaves for the scheduler (it then rides along at no cost); a release (the scheduler
//   took the client's receipt and dropped the task) cancels it; a TaskDone whose every push was
//   refused leaves at once. The caller does not hold when other tasks wait for the result
//   (ComputeTask::dependents_waiting): every level of a small graph would wait otherwise.
// Caveats: the deadline counts from the end of the pass that held the first one (take_due sees
//   the time, hold does not). Switched off (FastPaths::hold_task_done = false), nothing is held.
//   Held TaskDones still leave with the worker's goodbye (take_all).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/messages.hpp"

namespace dtask::worker {

class HeldDone {
 public:
  explicit HeldDone(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // Holds `done`, whose result went out in `pushes` (> 0) pushes not refused so far.
  void hold(protocol::TaskDone done, std::uint32_t pushes);
  // One push of `task`'s result was refused; the TaskDone if no push of it is left (send it now).
  std::optional<protocol::TaskDone> refused(protocol::TaskId task);
  // The scheduler released these tasks: their held TaskDones are not needed any more.
  void release(std::span<const protocol::TaskId> tasks);
  // The held TaskDones that must leave now (all or none), at the end of a pass at `now`;
  // `others_leaving`: other messages go to the scheduler in the same batch.
  std::vector<protocol::TaskDone> take_due(std::uint64_t now, bool others_leaving);
  std::vector<protocol::TaskDone> take_all();
  bool empty() const { return held_.empty(); }
  std::size_t size() const { return held_.size(); }

 private:
  struct Held {
    protocol::TaskDone done;
    std::uint32_t pushes = 0;
  };
  bool enabled_;
  std::vector<Held> held_;
  std::optional<std::uint64_t> since_;  // end of the pass that held the first of them
};

}  // namespace dtask::worker

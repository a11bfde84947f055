// Fast path, scheduler side: placing a task on the worker where its client already started it early.
//
// Purpose: a one-task submit's client sends StartTask to a worker at the same time as
//   SubmitTasks to the scheduler; when the scheduler places the task on that same worker, the
//   worker adopts the result it may already have instead of waiting for the ComputeTask's round
//   trip before starting.
// Inputs: TaskSpec::early_nonce (0 = not started early) and TaskSpec::early_on (the worker),
//   SchedulerConfig::fast_paths.early_start, the worker's threads as this scheduler sees them.
// Action: after the usual placement queued a fresh root task, place_early() assigns it to
//   early_on instead if that worker is alive, may run it, and has a free thread (processing +
//   incoming steals < nthreads); the assign event carries the nonce into the ComputeTask
//   (ComputeTask::early_nonce), which is how the worker matches it to its early start. Counted
//   in info()["counters"]["placed_where_started_early"].
// Caveats: only for ready root tasks that would wait in the root queue anyway (their queue entry
//   is skipped later as placed meanwhile); a busy or unknown worker gets nothing extra and the
//   task is placed as usual without a nonce: the worker's early result is then never used (the
//   worker drops it). With the switch off the nonce is ignored and placement is the usual one.
#include "scheduler/scheduler_state.hpp"

namespace dtask::scheduler {

bool SchedulerState::place_early(std::uint32_t slot, std::uint64_t nonce, WorkerId w, Outbox& out) {
  if (!config_.fast_paths.early_start || nonce == 0) return false;
  Task& t = tasks_[slot];
  if (t.state != TaskState::queued || t.n_deps != 0 || w.value >= workers_.size()) return false;
  const WorkerRecord& rec = workers_[w.value];
  if (!rec.alive || rec.processing.size() + rec.stealing_in >= rec.info.nthreads || !worker_can_run(rec, t, true)) {
    return false;
  }
  if (!transition(slot, TaskEvent::assign(w, nonce), out).ok) return false;
  ++early_placed_;
  return true;
}

}  // namespace dtask::scheduler

// Fast path "run on the loop thread": the quick-run records (see quick_runs.hpp).
#include "worker/quick_runs.hpp"

#include <algorithm>

#include "worker/worker_state.hpp"

namespace dtask::worker {

bool QuickRuns::may_run_here(const dtask_task_v1* fn) const {
  if (!enabled_ || fn == nullptr) return false;
  auto it = records_.find(fn);
  return it != records_.end() && it->second.may_run_here();
}

void QuickRuns::note_run(const dtask_task_v1* fn, std::uint64_t run_ns) {
  if (fn == nullptr) return;
  auto& r = records_[fn];
  if (run_ns > kRunHereMaxNs) {
    r.quick_in_a_row = 0;
    return;
  }
  r.quick_in_a_row = std::min(r.quick_in_a_row + 1, kRunHereAfterQuickRuns);
  if (r.strikes > 0 && ++r.quick_since_strike >= kQuickRunsPerPardon) {
    --r.strikes;
    r.quick_since_strike = 0;
  }
}

void QuickRuns::note_loop_run(const dtask_task_v1* fn, std::uint64_t run_ns) {
  if (fn == nullptr || run_ns <= kRunHereMaxNs) return;
  auto& r = records_[fn];
  ++r.strikes;
  r.quick_since_strike = 0;
}

const QuickRecord* QuickRuns::record(const dtask_task_v1* fn) const {
  auto it = records_.find(fn);
  return it == records_.end() ? nullptr : &it->second;
}

}  // namespace dtask::worker

// ---- the core's side: running a job on the loop thread ----

namespace dtask::worker {

std::optional<Completion> WorkerState::run_on_loop(Job job) {
  auto c = exec_.run_here(std::move(job));
  if (!c) return std::nullopt;  // the standby thread owns the loop now: touch nothing
  quick_.note_loop_run(c->entry, c->run_ns);
  return c;
}

}  // namespace dtask::worker

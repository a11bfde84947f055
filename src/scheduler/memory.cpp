// Workers' memory, the scheduler's side: their reports, paused workers, and placement that avoids forcing a spill.
//
// A worker sends MemoryReport (protocol 9, worker/worker_memory.cpp) when its memory changed
// noticeably, at most with each heartbeat, and at once when it pauses or resumes. Here:
//  - the last report per worker is kept (WorkerRecord::memory) and shown by info() (the client's
//    scheduler_info, the dashboard); a worker that leaves takes its report with it;
//  - a paused worker gets no new placement (worker_can_run, note_room/prune_room and so the root
//    dealing, the early-start fast path and stealing's thieves all skip it, placement.cpp), keeps
//    the tasks it was given (it starts them once it resumes), and its tasks that wait behind its
//    threads may be stolen by idle workers as usual; when its report says it resumed, dispatch and
//    stealing run so waiting work moves. Tasks no running worker may take wait (never fail as
//    "no worker can run it") while a paused worker could run them;
//  - the no-spill preference (would_spill): among candidates decide_worker would otherwise rate
//    equal, a worker that the task's expected result keeps under memory_target x its limit wins
//    over one it would push above. O(1) per candidate; a preference only, so a full cluster
//    still runs everything. SchedulerConfig::memory_target = 0 turns it off.
#include <algorithm>

#include "scheduler/scheduler_state.hpp"

namespace dtask::scheduler {

using namespace protocol;

// Purpose: a worker reports its memory (held, spilled, process, limit, paused).
// Input: the report; the previous one, if any, is in the worker's record.
// Action: the report replaces the last one and the worker's nbytes is noted with it (results
//   landing later are counted on top, held_estimate). A change from running to paused is counted
//   (worker_pauses) and logged; the worker is unlisted from the root dealing (prune_room). A
//   change from paused to running lists it again, retries the tasks that waited for a worker, deals
//   queued roots and, with none left, lets idle workers (it among them) steal.
// Caveats: the report is believed as it is (a worker lying about its memory only steers work
//   away from or to itself). A report from a retiring worker is kept too; it gets no work anyway.
void SchedulerState::on_memory_report(WorkerId w, const MemoryReport& m, Outbox& out) {
  auto& rec = workers_[w.value];
  const bool was_paused = rec.paused();
  rec.memory = m;
  rec.memory_reported = true;
  rec.nbytes_at_report = rec.nbytes;
  if (!was_paused && m.paused) {
    ++worker_pauses_;
    log_->info("worker '{}' paused: {} bytes of results held, {} spilled, process {} of limit {}", rec.info.name,
               m.held, m.spilled, m.process, m.limit);
    prune_room();
  } else if (was_paused && !m.paused) {
    log_->info("worker '{}' resumed: {} bytes of results held, {} spilled", rec.info.name, m.held, m.spilled);
    note_room(rec);
    retry_unrunnable(now_ms_, out);
    dispatch(out);
    if (root_queue_.empty()) steal_for_idle(out);
  }
}

std::uint64_t SchedulerState::held_estimate(const WorkerRecord& w) const {
  if (!w.memory_reported) return w.nbytes;
  // Results that landed (or left) since the report move the estimate; the next report corrects it.
  if (w.nbytes >= w.nbytes_at_report) return w.memory.held + (w.nbytes - w.nbytes_at_report);
  const std::uint64_t gone = w.nbytes_at_report - w.nbytes;
  return w.memory.held > gone ? w.memory.held - gone : 0;
}

std::uint64_t SchedulerState::expected_result_bytes(const Task& t) const {
  return t.func < func_result_avg_.size() ? func_result_avg_[t.func] : 0;
}

void SchedulerState::note_func_result(std::uint32_t func, std::uint64_t nbytes) {
  if (func >= func_result_avg_.size()) func_result_avg_.resize(func + 1, nbytes);
  // Weight 1/4: a function's results tend to be alike; a change shows within a few results.
  func_result_avg_[func] = (func_result_avg_[func] * 3 + nbytes) / 4;
}

bool SchedulerState::would_spill(const WorkerRecord& w, const Task& t) const {
  if (config_.memory_target <= 0) return false;
  const std::uint64_t limit = w.memory_reported && w.memory.limit ? w.memory.limit : w.info.memory_limit;
  if (limit == 0) return false;  // no limit: never penalised
  const double target = config_.memory_target * static_cast<double>(limit);
  return static_cast<double>(held_estimate(w) + expected_result_bytes(t)) > target;
}

bool SchedulerState::paused_worker_could_run(const Task& t) const {
  return std::any_of(workers_.begin(), workers_.end(), [&](const WorkerRecord& w) {
    return w.alive && !w.retiring && w.paused() && worker_fits(w, t, !t.allow_other);
  });
}

}  // namespace dtask::scheduler

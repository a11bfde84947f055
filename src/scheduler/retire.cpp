// Retiring workers, the scheduler's side: no new work, unstarted tasks placed elsewhere, unique results copied, then leave.
//
// A worker that leaves on its own (SIGTERM to its rank, Worker::retire; later scale-down and
// --lifetime) says RetireWorker. From then on:
//  - it gets no new placements (worker_can_run, note_room and dispatch skip it, placement.cpp);
//  - the tasks it gave back (not started there) are placed anew; what runs there finishes there;
//  - every result no worker that stays holds is copied to another live, non-retiring worker (a
//    copy on another retiring worker does not count: both would leave with it): that worker is
//    told FetchReplicas (it fetches from the retiring worker's data server as it fetches inputs)
//    and answers ReplicasAdded, which makes it a holder (on_replicas_added);
//  - once nothing runs there and nothing is held only there, or no other worker could take it,
//    it hears WorkerMayLeave; its goodbye is then an ordinary clean leave that loses nothing.
//    A worker leaving at its --lifetime (RetireWorker::wait_for_taker) instead waits for a new
//    worker to take what nobody else can: a batch cluster's replacement is on its way.
// The worker bounds the wait (WorkerOptions::drain_timeout_ms): if it leaves before the copies
// are made, the results it took along are recomputed by the usual worker-loss path.
#include "scheduler/scheduler_state.hpp"

#include <algorithm>

namespace dtask::scheduler {

using namespace protocol;

namespace {
// A copy asked for that has not arrived in this long is asked of another worker (the
// recipient's own fetch gives up after its fetch timeout, 10 s by default, and says nothing).
constexpr std::uint64_t kHandoverRetryMs = 15000;
}  // namespace

// Purpose: a worker is retiring (its first RetireWorker), or gives back more tasks (later ones:
//   ComputeTasks that reached it after it began).
// Input: the tasks it had not started.
// Action: the worker is marked retiring (so it gets nothing new) and unlisted from the root
//   dealing; each returned task still processing there is rescheduled and placed anew. Then
//   advance_retirements() (from handle()) starts the hand-over.
// Caveats: returned tasks the scheduler moved meanwhile (stolen, released, finished) are left as
//   they are. During a cluster shutdown this changes nothing that matters: WorkerShutdown wins.
void SchedulerState::on_retire_worker(WorkerId w, const RetireWorker& m, Outbox& out) {
  auto& rec = workers_[w.value];
  rec.wait_for_taker = rec.wait_for_taker || m.wait_for_taker;
  if (!rec.retiring) {
    rec.retiring = true;
    retiring_.push_back(w);
    ++workers_retired_;
    log_->info("worker '{}' is retiring: {} results held, {} tasks running or queued there", rec.info.name,
               rec.has_what.size(), rec.processing.size());
  }
  for (TaskId id : m.returned) {
    Task* t = tasks_.lookup(id);
    if (!t || t->state != TaskState::processing || t->processing_on != w) continue;
    const std::uint32_t slot = slot_of(id);
    if (transition(slot, TaskEvent::reschedule(), out).ok) make_ready_or_wait(slot, out);
  }
  dispatch(out);
}

// Purpose: a client asks workers to leave by name (Client::retire_workers; a cluster's scale-down
//   or adapt picks the names, e.g. with workers_to_close()).
// Input: worker names; unknown ones, dead ones and ones already leaving are ignored.
// Action: each named live worker hears PleaseRetire once (retire_asked, which info() shows as
//   retiring). It then retires exactly as if signalled: its RetireWorker marks it retiring here
//   and the hand-over above follows. Placement keeps using it until that RetireWorker arrives;
//   ComputeTasks that cross are given back (worker/retire.cpp).
// Caveats: the client learns the outcome from scheduler_info() (the names disappear at the
//   goodbye); no answer message, so an old name reused by a new worker later is not confused.
void SchedulerState::on_retire_workers(ClientId c, const RetireWorkers& m, Outbox& out) {
  for (const auto& name : m.names) {
    for (auto& w : workers_) {
      if (!w.alive || w.info.name != name || w.retiring || w.retire_asked) continue;
      w.retire_asked = true;
      log_->info("client {} asks worker '{}' to retire", c.value, name);
      out.worker(w.id, PleaseRetire{"asked by client " + std::to_string(c.value)});
    }
  }
}

// Purpose: moves every retiring worker towards its leave (after a message from a retiring worker,
//   a ReplicasAdded from anyone, and each tick).
// Action: copies that arrived are counted (results_handed_over) and dropped from handovers_;
//   copies whose recipient left or retires, or that took longer than kHandoverRetryMs, are asked
//   of another worker. Each result held only by a retiring worker and not being copied is
//   assigned to the live, non-retiring worker holding the fewest bytes (one FetchReplicas per
//   recipient). A retiring worker with nothing running and nothing held only there, or with no
//   worker to take its results, hears WorkerMayLeave (once).
// Caveats: O(results on retiring workers) per call, and it runs only while a worker retires.
//   Results are not copied during a cluster shutdown (everyone leaves anyway). A worker told it
//   may leave is off retiring_ but stays `retiring` (no placements) until its goodbye.
void SchedulerState::advance_retirements(Outbox& out) {
  std::erase_if(retiring_, [&](WorkerId w) { return !workers_[w.value].alive; });
  // A copy is safe only on a live worker that stays: two retiring workers that hold the same
  // result must not each count the other's copy, or both leave and the result is lost.
  auto stays = [&](WorkerId w) {
    const auto& r = workers_[w.value];
    return r.alive && !r.retiring && !r.retire_asked;
  };
  auto kept_elsewhere = [&](const Task& t, WorkerId self) {
    for (WorkerId h : t.who_has)
      if (h != self && stays(h)) return true;
    return false;
  };
  for (auto it = handovers_.begin(); it != handovers_.end();) {
    const Handover& h = it->second;
    const Task* t = tasks_.lookup(h.task);
    bool done = false;
    if (!t || t->state != TaskState::memory || !workers_[h.from.value].alive) {
      done = true;  // released, lost or forgotten meanwhile: nothing to copy any more
    } else if (t->who_has.contains(h.to)) {
      ++results_handed_over_;
      ++handed_from_[h.from.value];
      done = true;
    } else if (kept_elsewhere(*t, h.from)) {
      done = true;  // a copy appeared on a worker that stays (a dependent fetched it): safe
    } else if (!workers_[h.to.value].alive || workers_[h.to.value].retiring || now_ms_ > h.since_ms + kHandoverRetryMs) {
      done = true;  // assigned again below
    }
    it = done ? handovers_.erase(it) : std::next(it);
  }
  if (retiring_.empty() || shutdown_requested_) return;

  // Who may take copies, with the bytes each holds plus those already asked of it in this call.
  std::vector<std::pair<WorkerId, std::uint64_t>> takers;
  for (const auto& w : workers_) {
    // Not to a worker a client asked to retire either: it would only hand them on again.
    if (stays(w.id)) takers.emplace_back(w.id, w.nbytes);
  }
  std::vector<WorkerId> leaving;
  for (WorkerId wid : retiring_) {
    const auto& rec = workers_[wid.value];
    std::vector<std::uint32_t> unique;
    for (auto slot : rec.has_what) {
      const Task& t = tasks_[slot];
      if (t.state == TaskState::memory && !kept_elsewhere(t, wid)) unique.push_back(slot);
    }
    if (takers.empty() && !unique.empty() && rec.wait_for_taker) {
      // Its lifetime ran out before a replacement joined: the results wait for one (the worker
      // bounds the wait with its drain timeout, then they go the worker-loss way).
      if (!rec.told_no_taker) {
        log_->info("worker '{}' retires holding {} results no other worker can take yet: waiting for a new worker",
                   rec.info.name, unique.size());
        workers_[wid.value].told_no_taker = true;
      }
      continue;
    }
    if (takers.empty() || (unique.empty() && rec.processing.empty())) {
      if (!rec.processing.empty()) continue;  // it finishes what runs there first
      if (!unique.empty()) {
        log_->warn("worker '{}' retires and no other worker can take its {} results: they are recomputed if needed",
                   rec.info.name, unique.size());
      }
      out.worker(wid, WorkerMayLeave{handed_from_[wid.value]});
      handed_from_.erase(wid.value);
      leaving.push_back(wid);  // told once; it stays out of placement (retiring) until its goodbye
      continue;
    }
    std::unordered_map<std::uint32_t, std::vector<TaskId>> asks;  // recipient -> tasks
    for (auto slot : unique) {
      if (handovers_.count(slot)) continue;  // on its way
      const Task& t = tasks_[slot];
      auto to = std::min_element(takers.begin(), takers.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
      to->second += t.nbytes + 1;
      handovers_[slot] = Handover{t.id, wid, to->first, now_ms_};
      asks[to->first.value].push_back(t.id);
    }
    for (auto& [to, tasks] : asks) {
      out.worker(WorkerId{to}, FetchReplicas{wid, rec.info.address, std::move(tasks)});
    }
  }
  std::erase_if(retiring_, [&](WorkerId w) { return std::find(leaving.begin(), leaving.end(), w) != leaving.end(); });
}

}  // namespace dtask::scheduler

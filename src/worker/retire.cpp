// A worker leaving on its own, the worker's side: give back unstarted tasks, keep serving, leave when told (retire.hpp).
#include <algorithm>

#include "worker/worker_state.hpp"

namespace dtask::worker {

using namespace protocol;

void WorkerState::retire(std::uint64_t now, WorkerOutbox& out) {
  if (retiring_ || stop_) return;
  retiring_ = true;
  retire_deadline_ = now + config_.drain_timeout_ms;
  // Not registered yet: the RetireWorker goes with the welcome (on(WorkerWelcome)), so the
  // scheduler hears of it and lets us go with a goodbye instead of waiting for our silence. A
  // welcome that does not come within the reconnect grace will not come (the scheduler is gone
  // or busy elsewhere): with nothing here to hand over, the worker leaves then (tick).
  if (!welcomed_) {
    retire_deadline_ = now + std::min(config_.drain_timeout_ms, config_.reconnect_grace_ms);
    return;
  }
  // What has not started goes back: jobs still queued at the executor (withdrawn), tasks waiting
  // for inputs, jobs made ready in this pass. What runs finishes here.
  RetireWorker msg;
  msg.wait_for_taker = retire_for_lifetime_;
  for (auto it = pending_.begin(); it != pending_.end();) {
    const TaskId id = it->second.msg.task;
    if (!it->second.submitted || exec_.withdraw(id)) {
      msg.returned.push_back(id);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  // Fetches that only returned tasks were waiting for are dropped (one in flight just lands as a
  // replica, which the scheduler takes or releases).
  for (auto it = fetches_.begin(); it != fetches_.end();) {
    std::erase_if(it->second.waiting, [&](TaskId t) { return !pending_.count(t.value); });
    it = it->second.waiting.empty() && !it->second.in_flight ? fetches_.erase(it) : std::next(it);
  }
  std::sort(msg.returned.begin(), msg.returned.end(), [](TaskId a, TaskId b) { return a.value < b.value; });
  // TaskDones held back for a client's receipt go along with this message (held_done: any other
  // message takes them), and none is held from now on (store_result).
  if (config_.log) {
    config_.log->info("retiring: {} results held here, {} tasks running, {} given back", store_.size(), pending_.size(),
                      msg.returned.size());
  }
  out.to_scheduler.push_back(std::move(msg));
}

void WorkerState::give_back(TaskId task, WorkerOutbox& out) {
  // Joins this pass's RetireWorker if there is one, so a burst of late ComputeTasks is one message.
  for (auto& m : out.to_scheduler) {
    if (auto* r = std::get_if<RetireWorker>(&m)) {
      r->returned.push_back(task);
      return;
    }
  }
  out.to_scheduler.push_back(RetireWorker{{task}, retire_for_lifetime_});
}

void WorkerState::on(FetchReplicas& m, WorkerOutbox&) {
  // The same fetch machinery as inputs: no task waits for these, the copy is announced
  // (ReplicasAdded) when it lands.
  auto& address = peers_[m.from.value];
  if (address.empty()) address = m.address;
  for (TaskId id : m.tasks) {
    if (store_.contains(id.value)) {
      replicas_.push_back(id);  // already here: say so, the scheduler counts it as copied
      continue;
    }
    auto& f = fetches_[id.value];
    if (std::find(f.holders.begin(), f.holders.end(), m.from) == f.holders.end()) f.holders.push_back(m.from);
  }
}

void WorkerState::on(WorkerMayLeave& m, WorkerOutbox&) {
  if (!retiring_ || stop_) return;
  if (config_.log) config_.log->info("retired: {} results handed over; leaving", m.handed_over);
  stop_ = Stop{0, {}};
}

}  // namespace dtask::worker

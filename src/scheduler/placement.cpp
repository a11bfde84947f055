// Placement: which worker runs which task (decide_worker, the root queue and dispatch, stealing).
//
// The policy, in the order it applies:
//  - A ready task with inputs goes where most of its input bytes already are (ties: the least
//    busy holder), so data moves as little as possible; without holders that may run it, to the
//    least busy worker that may (round-robin start so ties spread). Restrictions (worker names)
//    are honoured first and dropped only for allow_other tasks; resources always are.
//  - A root task (no inputs, no restrictions, no resources) waits in root_queue_ (priority, then
//    submission order) and is dealt round-robin, one per worker with room per pass, to workers
//    with fewer than capacity() tasks: nthreads * saturation, plus saturation_extra while the
//    worker's results are small (so microsecond tasks never starve a worker, and loaders of big
//    chunks do not run far ahead of their consumers). Idle workers (a free thread) are dealt to
//    first, and each deal starts after the worker dealt to last, so tasks submitted one at a
//    time spread over an idle cluster (Dask: decide_worker's rotating index).
//  - A queued task no worker may run yet waits in unrunnable_ and is retried when workers join
//    and on every tick; after no_worker_timeout_ms with workers present it fails with a message
//    naming what it asked for and what there is.
//  - Imbalance is corrected afterwards by stealing: a worker with idle threads asks the worker
//    with the most tasks waiting behind its threads for some, never more than half of them.
//  - A task the client already started on a worker is placed there first if it has a free
//    thread (early_start.cpp, a fast path); otherwise this policy applies unchanged.
//  - Memory (memory.cpp): a paused worker gets nothing new (worker_can_run, the room list) until
//    it reports that it resumed; its unstarted tasks may be stolen like any worker's. Among
//    candidates decide_worker rates equal, one the task's expected result does not push above its
//    spill target wins (the no-spill preference).
#include <algorithm>
#include <cmath>

#include "scheduler/scheduler_state.hpp"

namespace dtask::scheduler {

using namespace protocol;

void SchedulerState::schedule_ready(std::uint32_t slot, Outbox& out) {
  Task& t = tasks_[slot];
  if (is_root(t)) {
    transition(slot, TaskEvent::queue(), out);
    return;
  }
  if (auto w = decide_worker(t)) {
    assign(slot, *w, out);
  } else {
    transition(slot, TaskEvent::queue(), out);
  }
}

void SchedulerState::assign(std::uint32_t slot, WorkerId w, Outbox& out) {
  transition(slot, TaskEvent::assign(w), out);
}

std::uint32_t SchedulerState::capacity(const WorkerRecord& w) const {
  auto base = static_cast<std::uint32_t>(std::ceil(w.info.nthreads * config_.saturation));
  bool small_results = w.result_bytes_avg <= config_.saturation_extra_max_result_bytes;
  return std::max<std::uint32_t>(1, base + (small_results ? config_.saturation_extra : 0));
}

void SchedulerState::note_room(WorkerRecord& w) {
  if (w.in_room || !w.alive || w.retiring || w.paused() || w.processing.size() >= w.capacity) return;
  w.in_room = true;
  room_.push_back(w.id);
}

void SchedulerState::note_result(WorkerRecord& w, std::uint64_t nbytes) {
  // An exponential average (weight 1/8): one big result is enough to stop dealing ahead.
  w.result_bytes_avg = (w.result_bytes_avg * 7 + nbytes) / 8;
  w.capacity = capacity(w);
  note_room(w);
}

void SchedulerState::prune_room() {
  for (std::size_t i = 0; i < room_.size();) {
    auto& w = workers_[room_[i].value];
    if (w.alive && !w.retiring && !w.paused() && w.processing.size() < w.capacity) {
      ++i;
      continue;
    }
    w.in_room = false;
    room_[i] = room_.back();
    room_.pop_back();
  }
}

void SchedulerState::dispatch(Outbox& out) {
  if (root_queue_.empty() || room_.empty()) return;
  // Deal queued root tasks round-robin, one per worker with a free slot per pass, so a short
  // queue is spread over the cluster instead of filling the first worker. Only workers listed in
  // room_ are visited; a full or dead one is unlisted (prune_room) and listed again when a task
  // leaves it.
  // Spreading (Dask's decide_worker fast path for a task without inputs: the idle workers first,
  // ties broken by a rotating index): the first pass deals only to workers with a free thread,
  // and every pass starts where the last task dealt left off (deal_cursor_), so sequential
  // submit().result() calls visit every idle worker in turn instead of the first one listed.
  prune_room();
  auto idle = [](const WorkerRecord& w) { return w.processing.size() + w.stealing_in < w.info.nthreads; };
  for (bool idle_only : {true, false}) {
    bool progress = true;
    while (progress && !root_queue_.empty()) {
      progress = false;
      std::size_t n = room_.size();
      std::size_t start = n ? deal_cursor_ % n : 0;
      for (std::size_t k = 0; k < n && !root_queue_.empty(); ++k) {
        std::size_t i = (start + k) % n;
        auto& w = workers_[room_[i].value];
        if (w.processing.size() >= w.capacity || (idle_only && !idle(w))) continue;
        if (!deal_one(w, out)) break;  // only stale entries were left: the queue is empty now
        deal_cursor_ = i + 1;
        progress = true;
      }
      if (idle_only) break;  // one task per idle worker; the passes below deal the rest
    }
  }
  prune_room();
}

bool SchedulerState::deal_one(WorkerRecord& w, Outbox& out) {
  while (!root_queue_.empty()) {
    QueueEntry e = root_queue_.top();
    root_queue_.pop();
    const Task& t = tasks_[e.slot];
    // Cancelled, forgotten (the slot may hold another task by now) or already placed meanwhile.
    if (t.seq != e.seq || t.state != TaskState::queued) continue;
    assign(e.slot, w.id, out);
    return true;
  }
  return false;
}

void SchedulerState::steal_for_idle(Outbox& out) {
  // One pass to find the worker with the most tasks waiting behind its threads; with none there
  // is nothing to steal (the common case), so this stays O(workers) even at 1,000 workers.
  // A paused worker starts nothing: every task it holds waits (the ones it had started refuse
  // the steal), so all of them count, and all of them may go.
  WorkerRecord* victim = nullptr;
  std::size_t best_surplus = 0;
  for (auto& v : workers_) {
    if (!v.alive) continue;
    std::size_t threads = v.paused() ? 0 : v.info.nthreads;
    std::size_t surplus = v.processing.size() > threads ? v.processing.size() - threads : 0;
    // One task behind a running worker's busy threads is not worth a steal; behind a paused one it is.
    std::size_t least = v.paused() ? 1 : 2;
    if (surplus >= least && surplus > best_surplus) {
      best_surplus = surplus;
      victim = &v;
    }
  }
  if (!victim) return;
  // Never take more than half of what waits behind a running worker's threads.
  std::size_t budget = victim->paused() ? best_surplus : best_surplus / 2;
  for (auto& thief : workers_) {
    if (budget == 0) break;
    if (!thief.alive || thief.id == victim->id) continue;
    std::size_t busy = thief.processing.size() + thief.stealing_in;
    if (busy >= thief.info.nthreads) continue;
    std::size_t take = std::min(thief.info.nthreads - busy, budget);
    for (auto slot : victim->processing) {
      if (take == 0) break;
      Task& t = tasks_[slot];
      if (t.steal_pending || !restrictions_of(t).empty() || !worker_can_run(thief, t, true)) continue;
      t.steal_pending = true;
      t.steal_thief = thief.id;
      ++thief.stealing_in;
      out.worker(victim->id, StealRequest{t.id});
      --take;
      --budget;
    }
  }
}

void SchedulerState::retry_unrunnable(std::uint64_t now, Outbox& out) {
  if (unrunnable_.empty()) return;
  auto pending = unrunnable_;
  for (auto [slot, since_ms] : pending) {
    Task& t = tasks_[slot];
    if (t.state != TaskState::queued) continue;
    if (auto w = decide_worker(t)) {
      assign(slot, *w, out);
      continue;
    }
    bool any_alive = std::any_of(workers_.begin(), workers_.end(), [](const auto& w) { return w.alive; });
    // A paused worker that may run it will resume: the task waits for it, however long.
    if (any_alive && now > since_ms + config_.no_worker_timeout_ms && !paused_worker_could_run(t)) {
      std::string names;
      for (const auto& w : workers_) {
        if (w.alive) names += (names.empty() ? "" : ", ") + w.info.name;
      }
      std::string want;
      for (const auto& r : restrictions_of(t)) want += (want.empty() ? "" : ", ") + r;
      std::string res;
      for (const auto& [k, v] : resources_of(t)) res += (res.empty() ? "" : ", ") + k + "=" + std::to_string(v);
      fail(slot, tasks_.func_of(t),
           "no worker can run it (workers=[" + want + "], resources={" + res + "}; workers present: " + names + ")",
           false, out);
    }
  }
}

bool SchedulerState::worker_can_run(const WorkerRecord& w, const Task& t, bool honour_restrictions) const {
  if (!w.alive || w.retiring) return false;  // a retiring worker takes no new work (retire.cpp)
  if (w.paused()) return false;              // nor does a paused one, until it resumes (memory.cpp)
  return worker_fits(w, t, honour_restrictions);
}

bool SchedulerState::worker_fits(const WorkerRecord& w, const Task& t, bool honour_restrictions) const {
  const TaskExtras* ex = tasks_.extras_of(t);
  if (!ex) return true;
  for (const auto& [name, amount] : ex->resources) {
    auto it = std::find_if(w.info.resources.begin(), w.info.resources.end(),
                           [&](const auto& r) { return r.first == name; });
    if (it == w.info.resources.end() || it->second < amount) return false;
  }
  if (honour_restrictions && !ex->restrictions.empty()) {
    return std::find(ex->restrictions.begin(), ex->restrictions.end(), w.info.name) != ex->restrictions.end();
  }
  return true;
}

std::optional<WorkerId> SchedulerState::decide_worker(const Task& t) const {
  // With inputs in memory, only their holders are considered first (Dask's rule): most input
  // bytes wins, then the least busy. This keeps placement O(holders), not O(workers).
  auto occupancy = [](const WorkerRecord& w) {
    return static_cast<double>(w.processing.size()) / w.info.nthreads;
  };
  // The no-spill preference (memory.cpp): of two candidates rated equal so far, the one the
  // task's result keeps under its spill target. Checked only on ties, so it costs nothing else.
  auto roomier = [&](const WorkerRecord& a, const WorkerRecord& b) { return !would_spill(a, t) && would_spill(b, t); };
  if (t.n_deps != 0) {
    std::vector<std::pair<WorkerId, std::uint64_t>> local;
    for (auto d : deps_of(t)) {
      const Task& dt = tasks_[d];
      for (auto h : dt.who_has) {
        auto it = std::find_if(local.begin(), local.end(), [&](const auto& p) { return p.first == h; });
        if (it == local.end()) local.emplace_back(h, dt.nbytes + 1);
        else it->second += dt.nbytes + 1;
      }
    }
    const WorkerRecord* best = nullptr;
    std::uint64_t best_bytes = 0;
    for (const auto& [h, bytes] : local) {
      const WorkerRecord& w = workers_[h.value];
      if (!worker_can_run(w, t, true)) continue;
      if (!best || bytes > best_bytes ||
          (bytes == best_bytes && (occupancy(w) < occupancy(*best) ||
                                   (occupancy(w) == occupancy(*best) && roomier(w, *best))))) {
        best = &w;
        best_bytes = bytes;
      }
    }
    // Locality wins; imbalance is corrected later by stealing, which costs no transfer up front.
    if (best) return best->id;
  }
  for (int pass = 0; pass < 2; ++pass) {
    bool honour = pass == 0;
    if (!honour && !t.allow_other) break;
    const WorkerRecord* best = nullptr;
    std::size_t n = workers_.size();
    std::size_t start = n ? static_cast<std::size_t>(round_robin_++ % n) : 0;
    for (std::size_t i = 0; i < n; ++i) {
      const WorkerRecord& w = workers_[(start + i) % n];
      if (!worker_can_run(w, t, honour)) continue;
      if (!best || occupancy(w) < occupancy(*best) || (occupancy(w) == occupancy(*best) && roomier(w, *best))) {
        best = &w;
      }
    }
    if (best) return best->id;
  }
  return std::nullopt;
}

}  // namespace dtask::scheduler

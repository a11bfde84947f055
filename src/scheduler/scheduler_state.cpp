// The scheduler's handlers: peers, one handler per request, and the graph's bookkeeping (release, forget, fail).
#include "scheduler/scheduler_state.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace dtask::scheduler {

using namespace protocol;

namespace {
// Text from a peer that goes into errors and logs, cut to `n` characters.
std::string clip(const std::string& s, std::size_t n) { return s.size() > n ? s.substr(0, n) + "..." : s; }
}  // namespace

SchedulerState::SchedulerState(SchedulerConfig config, std::shared_ptr<spdlog::logger> log)
    : config_(config), log_(log ? std::move(log) : dtask::log::make("scheduler", "")) {}

// ---------------------------------------------------------------------------------------------
// peers

// Purpose: a worker registers.
// Input: its registration; `previous` is its supervisor's report on the incarnation before it
//   (died, why, the tasks it was running), filled when the supervisor restarted it.
// Action: refused (a Rejected via the server) for another protocol version, a shutdown under
//   way, no threads, or a name already in use; otherwise welcomed, listed with room, and given
//   queued work at once (roots, and tasks that waited for a worker that may run them).
//   A name in use by a live worker while the report says the incarnation before died is that
//   worker restarted: the old record is removed at once as a death (WorkerLoss::died, so the
//   report's running tasks are suspected), then the new one registers. This is how a death is
//   noticed within a second instead of after worker_timeout_ms.
// Caveats: the report is believed (only a supervisor fills it; a worker lying about its own
//   death harms only its own name). If the old record was already removed (heartbeat timeout),
//   the report changes nothing: that loss was counted then, with every task suspected.
std::optional<WorkerId> SchedulerState::add_worker(const RegisterWorker& reg, std::string identity,
                                                   std::uint64_t now, Outbox& out, std::string* reject) {
  now_ms_ = now;
  auto refuse = [&](std::string why) -> std::optional<WorkerId> {
    if (reject) *reject = std::move(why);
    return std::nullopt;
  };
  if (reg.version != kProtocolVersion) {
    return refuse("protocol version mismatch: worker speaks " + std::to_string(reg.version) + ", scheduler speaks " +
                  std::to_string(kProtocolVersion));
  }
  if (shutdown_requested_) return refuse("the cluster is shutting down");
  if (reg.nthreads == 0) return refuse("a worker needs at least one thread");
  for (auto& w : workers_) {
    if (!w.alive || w.info.name != reg.name) continue;
    if (!reg.previous.died) return refuse("a worker named '" + reg.name + "' is already registered");
    // Bounded: the reason is repeated in every suspected task's error and in the log.
    std::string reason = clip(reg.previous.reason, 500);
    log_->warn("worker '{}' on {} died ({}) and was restarted", w.info.name, w.info.host, reason);
    remove_worker(w.id, WorkerLoss::died(std::move(reason), reg.previous.running), out);
    break;  // names are unique among live workers
  }
  WorkerRecord rec;
  rec.id = WorkerId{static_cast<std::uint32_t>(workers_.size())};
  rec.identity = identity;
  rec.info = reg;
  rec.last_seen_ms = now;
  rec.last_busy_ms = now;
  rec.capacity = capacity(rec);
  WorkerWelcome welcome;
  welcome.worker = rec.id;
  welcome.heartbeat_ms = config_.heartbeat_ms;
  welcome.peers.push_back(Peer{rec.id, reg.address});
  WorkerId id = rec.id;
  worker_identities_[identity] = id;
  workers_.push_back(std::move(rec));
  note_room(workers_.back());
  observatory_.worker_joined(reg.name, reg.host, static_cast<int>(reg.nthreads), now);
  out.worker(id, std::move(welcome));
  retry_unrunnable(now, out);
  dispatch(out);
  return id;
}

std::optional<ClientId> SchedulerState::add_client(const RegisterClient& reg, std::string identity, std::uint64_t now,
                                                   Outbox& out) {
  now_ms_ = now;
  ClientRecord rec;
  rec.id = ClientId{static_cast<std::uint32_t>(clients_.size())};
  rec.identity = identity;
  rec.name = reg.name;
  rec.data_identity = reg.data_identity;
  rec.last_seen_ms = now;
  client_identities_[identity] = rec.id;
  clients_.push_back(rec);
  out.client(rec.id, ClientWelcome{kProtocolVersion, rec.id, dashboard_link_});
  return rec.id;
}

// Purpose: a worker left (goodbye) or died (its supervisor's report, or a heartbeat timeout).
// Input: the kind of loss (WorkerLoss): a death names the tasks running there, or names none.
// Action: what ran there is rescheduled. On a death, the tasks suspected of killing it (those the
//   report names as running; every task processing there when there is no report, as Dask does)
//   count one more death each (suspect): at allowed_failures one fails as KilledWorker, with its
//   dependents, instead of running again. Results whose only copy was there are lost: their
//   wanting clients hear KeyLost, dependents running or queued on them go back to released, and
//   each is recomputed if still needed (forgotten if not). The other workers hear PeersChanged.
// Caveats: the record stays (ids are never reused); later messages from it are counted stale.
//   A goodbye suspects nothing. A task assigned there but not started is never suspected when a
//   report exists (only the report knows what had started).
void SchedulerState::remove_worker(WorkerId wid, const WorkerLoss& loss, Outbox& out) {
  if (wid.value >= workers_.size() || !workers_[wid.value].alive) return;
  auto& rec = workers_[wid.value];
  rec.alive = false;
  worker_identities_.erase(rec.identity);
  // Its memory report leaves with it (memory.cpp): a paused worker that is gone holds nothing back.
  rec.memory = {};
  rec.memory_reported = false;
  if (loss.is_death()) ++workers_died_;
  observatory_.worker_gone(rec.info.name, loss.is_death() ? "died: " + loss.reason : std::string("left"), now_ms_);
  std::vector<std::uint32_t> reschedule;
  const std::size_t was_processing = rec.processing.size();

  // Work in flight there starts again elsewhere, unless this death was its last allowed one.
  auto suspected = [&](std::uint32_t slot) {
    if (loss.kind == WorkerLoss::Kind::heartbeat_timeout || loss.kind == WorkerLoss::Kind::connection_lost) return true;
    if (loss.kind == WorkerLoss::Kind::goodbye) return false;
    TaskId id = tasks_[slot].id;
    return std::find(loss.running.begin(), loss.running.end(), id) != loss.running.end();
  };
  for (auto slot : std::vector<std::uint32_t>(rec.processing.begin(), rec.processing.end())) {
    if (suspected(slot) && suspect(slot, rec, loss, out)) continue;
    if (transition(slot, TaskEvent::reschedule(), out).ok) reschedule.push_back(slot);
  }
  // Results whose only copy was there are lost: anything still needing them recomputes them.
  std::size_t lost = 0;
  for (auto slot : std::vector<std::uint32_t>(rec.has_what.begin(), rec.has_what.end())) {
    Task& t = tasks_[slot];
    t.who_has.erase_all(wid);
    if (!t.who_has.empty() || t.state != TaskState::memory) continue;
    ++lost;
    for (ClientId c : t.wanted_by) out.client(c, KeyLost{std::string(key_of(t))});
    transition(slot, TaskEvent::drop_data(), out);
    for (auto d : tasks_[slot].dependents.to_vector()) {
      Task& dt = tasks_[d];
      if (dt.state == TaskState::processing) {
        if (dt.processing_on != kNoWorker && workers_[dt.processing_on.value].alive) {
          out.worker(dt.processing_on, ReleaseTasks{{dt.id}});
        }
        transition(d, TaskEvent::reschedule(), out);
        reschedule.push_back(d);
      } else if (dt.state == TaskState::queued) {
        transition(d, TaskEvent::reschedule(), out);
        reschedule.push_back(d);
      }
    }
    if (needed(tasks_[slot])) {
      reschedule.push_back(slot);
    } else {
      forget_queue_.push_back(slot);
    }
  }
  // A worker that said goodbye should have handed over what only it held (retire.cpp); one that
  // did not (its drain timeout ran out, or no worker could take them) is worth a line.
  if ((lost > 0 || was_processing > 0) && loss.kind == WorkerLoss::Kind::goodbye && !shutdown_requested_) {
    log_->warn("worker '{}' left holding {} results no other worker has and {} tasks placed there: they are "
               "recomputed if needed",
               rec.info.name, lost, was_processing);
  }
  rec.has_what.clear();
  rec.nbytes = 0;
  for (auto slot : reschedule) {
    if (tasks_[slot].state == TaskState::released) make_ready_or_wait(slot, out);
  }
  maybe_forget(kNoSlot, out);
  for (const auto& w : workers_) {
    if (w.alive) out.worker(w.id, PeersChanged{{}, {wid}});
  }
  dispatch(out);
}

// Purpose: a task was processing on a worker that died, and is suspected of killing it.
// Input: its slot (processing on `w`), the dead worker's record and the loss (its reason).
// Action: one more death is counted against it, with a line naming the worker, its host and the
//   reason (bounded, like a retried task's attempts). When the count reaches allowed_failures
//   (0: never) the task fails as KilledWorker (the fail event, from processing), and its
//   dependents with it: every wanting client hears KeyErred with a message naming the task, the
//   count, the last worker and its reason, then each death; returns true. Otherwise false: the
//   caller reschedules it as for any task on a lost worker.
// Caveats: retries=n does not apply (as in Dask): retries are for exceptions a task raises; a
//   death is counted apart and never consumes one. The count lives until the task fails or is
//   forgotten (a finished task that is lost and recomputed keeps it, as Dask's suspicious does).
bool SchedulerState::suspect(std::uint32_t slot, const WorkerRecord& w, const WorkerLoss& loss, Outbox& out) {
  Task& t = tasks_[slot];
  const std::string& reason = loss.reason;  // bounded where it came in (add_worker)
  std::string where = "worker '" + w.info.name + "' on host " + w.info.host;
  auto& d = deaths_[t.id.value];
  d.add("death", ": " + where + ": " + reason);
  if (config_.allowed_failures == 0 || d.count < config_.allowed_failures) return false;

  std::string key(key_of(t));
  const std::uint32_t count = d.count;
  std::string message = "KilledWorker: task '" + key + "' was running on " +
                        (count == 1 ? std::string("1 worker that died") : std::to_string(count) + " workers that died") +
                        "; the last, " + where + ": " + reason + "\n" + d.listing("deaths");
  deaths_.erase(t.id.value);
  // Exceptions it raised on earlier attempts (retries) are part of its story too.
  if (auto it = attempts_.find(t.id.value); it != attempts_.end()) {
    message += "earlier attempts that raised:\n" + it->second.listing("attempts");
    attempts_.erase(it);
  }
  if (!message.empty() && message.back() == '\n') message.pop_back();
  ++tasks_killed_;
  log_->warn("task '{}' failed as KilledWorker after {} workers died while running it (the last: {})", key, count,
             reason);
  fail(slot, tasks_.func_of(t), message, false, out);
  return true;
}

// Purpose: a client left (goodbye) or died (heartbeat timeout).
// Action: it wants nothing any more: whatever nobody else wants and nothing needs is forgotten.
void SchedulerState::remove_client(ClientId cid, Outbox& out) {
  if (cid.value >= clients_.size() || !clients_[cid.value].alive) return;
  clients_[cid.value].alive = false;
  client_identities_.erase(clients_[cid.value].identity);
  std::vector<std::uint32_t> touched;
  for (std::uint32_t slot = 0; slot < tasks_.slots(); ++slot) {
    Task& t = tasks_[slot];
    if (t.state == TaskState::forgotten) continue;
    if (!t.wanted_by.erase_first(cid)) continue;
    if (t.wanted_by.empty()) touched.push_back(slot);
  }
  for (auto slot : touched) {
    if (tasks_[slot].state == TaskState::forgotten) continue;
    maybe_release_data(slot, out);
    forget_queue_.push_back(slot);
  }
  maybe_forget(kNoSlot, out);
}

void SchedulerState::request_shutdown(int code, const std::string& reason, Outbox& out) {
  if (shutdown_requested_) return;
  shutdown_requested_ = true;
  shutdown_code_ = code;
  shutdown_reason_ = reason;
  for (const auto& w : workers_) {
    if (w.alive) out.worker(w.id, WorkerShutdown{code});
  }
  for (const auto& c : clients_) {
    if (c.alive) out.client(c.id, ClusterClosing{code, reason});
  }
}

// ---------------------------------------------------------------------------------------------
// input

void SchedulerState::handle(WorkerId from, WorkerToScheduler msg, std::uint64_t now, Outbox& out) {
  now_ms_ = now;
  if (from.value >= workers_.size() || !workers_[from.value].alive) {
    ++stale_messages_;
    return;
  }
  workers_[from.value].last_seen_ms = now;
  workers_[from.value].link_closed_ms = 0;  // it speaks: whatever closed, it is (re)connected
  std::visit(
      [&](auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, TaskDone>) on_task_done(from, m, out);
        else if constexpr (std::is_same_v<M, TaskFailed>) on_task_failed(from, m, out);
        else if constexpr (std::is_same_v<M, ReplicasAdded>) on_replicas_added(from, m, out);
        else if constexpr (std::is_same_v<M, StealReply>) on_steal_reply(from, m, out);
        else if constexpr (std::is_same_v<M, FetchFailed>) on_fetch_failed(from, m, out);
        else if constexpr (std::is_same_v<M, WorkerGoodbye>) {
          remove_worker(from, WorkerLoss::goodbye(), out);
          if (m.code != 0 && config_.stop_job_when_worker_signalled) {
            request_shutdown(m.code, "worker " + workers_[from.value].info.name + " was stopped by a signal", out);
          }
        }
        else if constexpr (std::is_same_v<M, Heartbeat>) {}
        else if constexpr (std::is_same_v<M, RegisterWorker>) ++stale_messages_;  // already registered
        else if constexpr (std::is_same_v<M, RetireWorker>) on_retire_worker(from, m, out);
        else if constexpr (std::is_same_v<M, MemoryReport>) on_memory_report(from, m, out);
        else if constexpr (std::is_same_v<M, Telemetry>) on_telemetry(from, m);
      },
      msg);
  if (!retiring_.empty() && (workers_[from.value].retiring || std::holds_alternative<ReplicasAdded>(msg))) advance_retirements(out);
}

void SchedulerState::handle(ClientId from, ClientToScheduler msg, std::uint64_t now, Outbox& out) {
  now_ms_ = now;
  if (from.value >= clients_.size() || !clients_[from.value].alive) {
    ++stale_messages_;
    return;
  }
  clients_[from.value].last_seen_ms = now;
  std::visit(
      [&](auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, SubmitTasks>) on_submit(from, m, out);
        else if constexpr (std::is_same_v<M, ReleaseKeys>) on_release_keys(from, m, out);
        else if constexpr (std::is_same_v<M, CancelKeys>) on_cancel_keys(from, m, out);
        else if constexpr (std::is_same_v<M, InfoRequest>) out.client(from, InfoReply{m.request_id, answer_info(m)});
        else if constexpr (std::is_same_v<M, ShutdownCluster>) request_shutdown(m.code, "the client asked for shutdown", out);
        else if constexpr (std::is_same_v<M, ClientGoodbye>) remove_client(from, out);
        else if constexpr (std::is_same_v<M, ResultsReceived>) on_results_received(from, m, out);
        else if constexpr (std::is_same_v<M, RetireWorkers>) on_retire_workers(from, m, out);
        else if constexpr (std::is_same_v<M, Heartbeat>) {}
        else if constexpr (std::is_same_v<M, RegisterClient>) ++stale_messages_;
      },
      msg);
}

namespace {
// Why a task's arguments cannot be run as they are (empty if they can): a dependency names
// exactly one key, a list any number, and no other kind exists. Such a task is refused (it fails
// with this message, its client hears KeyErred) instead of reaching a worker with a missing
// argument.
std::string malformed_args(const TaskSpec& spec) {
  for (std::size_t i = 0; i < spec.args.size(); ++i) {
    const auto& a = spec.args[i];
    if (a.kind == ClientArg::value || a.kind == ClientArg::dep_list) continue;
    if (a.kind == ClientArg::dep) {
      if (a.refs.size() == 1) continue;
      return "argument " + std::to_string(i) + " is a dependency naming " + std::to_string(a.refs.size()) +
             " keys (exactly one expected)";
    }
    return "argument " + std::to_string(i) + " has an unknown kind (" + std::to_string(a.kind) + ")";
  }
  return {};
}
}  // namespace

// Purpose: a client submits tasks (a graph, dependencies before their dependents).
// Input: task specs; a key already known is the same task (Dask: the same future).
// Action: a known key is wanted by this client too (told at once if already finished); a new
//   key gets a record (TaskTable::add) linked to its inputs, then, once the whole batch is in,
//   fails (unknown input, erred input), waits for its inputs, or is placed; a task its client
//   started early may go where it started (early_start.cpp). Queued roots are dealt at the end.
// Caveats: inputs must come before their dependents, in this batch or earlier ones: a key not
//   known yet is an unknown input, and the task fails with a message naming it.
void SchedulerState::on_submit(ClientId c, SubmitTasks& m, Outbox& out) {
  struct Fresh {
    std::uint32_t slot;
    std::string bad;  // why it cannot run, if it cannot
    std::uint64_t early_nonce = 0;
    WorkerId early_on;
  };
  std::vector<Fresh> fresh;
  fresh.reserve(m.tasks.size());
  for (auto& spec : m.tasks) {
    std::uint32_t existing = tasks_.slot_of_key(spec.key);
    if (existing != kNoSlot) {
      // Same key again (Dask: same future). The client now wants it too.
      Task& t = tasks_[existing];
      if (spec.wanted && !t.wanted_by.contains(c)) {
        t.wanted_by.push_back(c);
        if (t.state == TaskState::memory) {
          std::vector<std::string> holders;
          for (auto h : t.who_has) holders.push_back(workers_[h.value].info.address);
          out.client(c, KeyDone{std::string(key_of(t)), t.id, std::move(holders), t.nbytes, false, {}});
        } else if (t.state == TaskState::erred) {
          const Failure* f = failure_of(t);
          if (t.cancelled) out.client(c, KeyCancelled{std::string(key_of(t)), f->message});
          else out.client(c, KeyErred{std::string(key_of(t)), f->func, f->message});
        }
      }
      continue;
    }
    std::string bad = malformed_args(spec);  // refused before it can reach a worker
    std::uint32_t slot = tasks_.add(spec, bad);
    ++counts_[static_cast<std::size_t>(TaskState::released)];
    Task& t = tasks_[slot];
    if (t.func >= func_counts_.size()) func_counts_.resize(t.func + 1);
    ++func_counts_[t.func].now[static_cast<std::size_t>(TaskState::released)];
    ++func_counts_[t.func].submitted;
    t.seq = next_seq_++;
    t.push_result = push_result_wanted(spec);  // enter_processing names who can take it
    if (spec.wanted) t.wanted_by.push_back(c);
    for (auto d : deps_of(t)) {
      Task& dt = tasks_[d];
      dt.dependents.push_back(slot);
      ++dt.unfinished_dependents;
      if (dt.state != TaskState::memory) ++t.waiting_on;
    }
    fresh.push_back({slot, std::move(bad), spec.early_nonce, spec.early_on});
  }
  for (auto& f : fresh) {
    Task& t = tasks_[f.slot];
    if (t.state != TaskState::released) continue;
    if (!f.bad.empty()) {
      fail(f.slot, tasks_.func_of(t), f.bad, false, out);
      continue;
    }
    const Task* failed_dep = nullptr;
    for (auto d : deps_of(t)) {
      if (tasks_[d].state == TaskState::erred) failed_dep = &tasks_[d];
    }
    if (failed_dep) {
      const Failure* why = failure_of(*failed_dep);
      fail(f.slot, why->func, why->message, failed_dep->cancelled, out);
      continue;
    }
    make_ready_or_wait(f.slot, out);
    if (f.early_nonce != 0) place_early(f.slot, f.early_nonce, f.early_on, out);
  }
  dispatch(out);
}

// Purpose: a client dropped its futures for these keys.
// Action: the client no longer wants them; what nobody wants and nothing needs is forgotten
//   (running work is released on its worker, stored data dropped), inputs included.
// Caveats: a key the client did not want, or that is unknown, is ignored.
void SchedulerState::on_release_keys(ClientId c, const ReleaseKeys& m, Outbox& out) {
  for (const auto& key : m.keys) {
    std::uint32_t slot = tasks_.slot_of_key(key);
    if (slot == kNoSlot) continue;
    Task& t = tasks_[slot];
    if (!t.wanted_by.erase_first(c)) continue;
    if (!t.wanted_by.empty()) continue;
    maybe_release_data(slot, out);
    forget_queue_.push_back(slot);
  }
  maybe_forget(kNoSlot, out);
  dispatch(out);
}

// Purpose: a client cancels keys.
// Action: an unfinished task fails as cancelled, with every dependent (their wanting clients get
//   KeyCancelled; a running one is released on its worker); a finished one stays as it is and its
//   wanting clients hear KeyCancelled (their futures stop waiting).
void SchedulerState::on_cancel_keys(ClientId, const CancelKeys& m, Outbox& out) {
  for (const auto& key : m.keys) {
    std::uint32_t slot = tasks_.slot_of_key(key);
    if (slot == kNoSlot) continue;
    Task& t = tasks_[slot];
    if (t.state == TaskState::memory || t.state == TaskState::erred) {
      for (ClientId c : t.wanted_by) out.client(c, KeyCancelled{std::string(key_of(t)), "cancelled by the client"});
      continue;
    }
    fail(slot, tasks_.func_of(t), "cancelled by the client", true, out);
  }
  dispatch(out);
}

// Purpose: a worker finished a task. The hot path (W2: once per task).
// Input: the task id, its result's size, and the value itself if small (has_data).
// Action: the task is in memory on that worker (finish event, carrying the inline value for the
//   waiting clients' KeyDone); then what follows completions (after_finished).
// Caveats: late news (released, stolen, forgotten meanwhile, or already reported by the client
//   the result was pushed to) is counted stale; the worker drops its copy unless it is still a
//   holder of the task's data.
void SchedulerState::on_task_done(WorkerId w, const TaskDone& m, Outbox& out) {
  Task* t = tasks_.lookup(m.task);
  if (!t || t->state != TaskState::processing || t->processing_on != w) {
    ++stale_messages_;
    bool useful = t && t->state == TaskState::memory && t->who_has.contains(w);
    if (!useful) out.worker(w, ReleaseTasks{{m.task}});
    return;
  }
  transition(slot_of(m.task), TaskEvent::finish(w, m.nbytes, m.has_data ? &m.data : nullptr), out);
  after_finished({&w, 1}, out);  // no vector: this is the hot path
}

void SchedulerState::after_finished(std::span<const WorkerId> finished_on, Outbox& out) {
  maybe_forget(kNoSlot, out);
  dispatch(out);
  if (!root_queue_.empty()) return;
  for (WorkerId w : finished_on) {
    const auto& rec = workers_[w.value];
    if (rec.processing.size() < rec.info.nthreads) {
      steal_for_idle(out);
      return;
    }
  }
}

// Purpose: a task threw on its worker.
// Action: with retries left it runs again (rescheduled, placed anew); otherwise it fails with
//   the worker's message, and so does every dependent (wanting clients get KeyErred).
// Caveats: late news (the task was released, stolen or forgotten meanwhile) is counted stale.
void SchedulerState::on_task_failed(WorkerId w, const TaskFailed& m, Outbox& out) {
  Task* t = tasks_.lookup(m.task);
  if (!t || t->state != TaskState::processing || t->processing_on != w) {
    ++stale_messages_;
    return;
  }
  std::uint32_t slot = slot_of(m.task);
  // Each attempt's message is bounded too, so one huge message cannot crowd out the others.
  const std::string what = " (worker '" + workers_[w.value].info.name + "'): " + clip(m.message, 2000);
  if (t->retries_left > 0) {
    --t->retries_left;
    attempts_[m.task.value].add("attempt", what);
    transition(slot, TaskEvent::reschedule(), out);
    make_ready_or_wait(slot, out);
  } else if (auto it = attempts_.find(m.task.value); it != attempts_.end()) {
    // The final error lists every attempt: retries of a flaky task rarely fail the same way.
    Attempts a = std::move(it->second);
    attempts_.erase(it);
    std::string message = a.listing("attempts") + "attempt " + std::to_string(a.count + 1) + what;
    fail(slot, tasks_.func_of(*t), message, false, out);
  } else {
    fail(slot, tasks_.func_of(*t), m.message, false, out);
  }
  maybe_forget(kNoSlot, out);
  dispatch(out);
}

// Purpose: a worker now holds copies of these results too (it fetched them as inputs).
// Action: it is listed as a holder of each task still in memory; copies of anything else
//   (released or forgotten meanwhile) are released on that worker.
void SchedulerState::on_replicas_added(WorkerId w, const ReplicasAdded& m, Outbox& out) {
  std::vector<TaskId> unwanted;
  for (TaskId id : m.tasks) {
    Task* t = tasks_.lookup(id);
    if (t && t->state == TaskState::memory) {
      if (!t->who_has.contains(w)) {
        t->who_has.push_back(w);
        workers_[w.value].has_what.insert(slot_of(id));
        workers_[w.value].nbytes += t->nbytes;
      }
    } else {
      unwanted.push_back(id);
    }
  }
  if (!unwanted.empty()) out.worker(w, ReleaseTasks{std::move(unwanted)});
}

// Purpose: the victim of a steal request (placement.cpp, steal_for_idle) answers.
// Action: the steal is no longer pending (the thief's count of incoming steals drops); if the
//   victim gave the task up, it runs on the thief, or is placed anew when the thief died or may
//   not run it.
// Caveats: a refused steal (the task had started) leaves the task where it was.
void SchedulerState::on_steal_reply(WorkerId w, const StealReply& m, Outbox& out) {
  Task* t = tasks_.lookup(m.task);
  if (!t || !t->steal_pending || t->processing_on != w) return;
  WorkerId thief = t->steal_thief;
  auto& thief_rec = workers_[thief.value];
  if (thief_rec.stealing_in > 0) --thief_rec.stealing_in;
  t->steal_pending = false;
  t->steal_thief = kNoWorker;
  if (!m.stolen || t->state != TaskState::processing) return;
  std::uint32_t slot = slot_of(m.task);
  transition(slot, TaskEvent::reschedule(), out);
  if (thief_rec.alive && worker_can_run(thief_rec, tasks_[slot], true)) {
    assign(slot, thief, out);
  } else {
    make_ready_or_wait(slot, out);
  }
  dispatch(out);
}

// Purpose: a worker could not fetch an input of a task it was to run (every holder failed).
// Action: the task is placed anew (the inputs' holders are then as this scheduler knows them;
//   an input whose copies are all gone is recomputed when its holders are removed).
void SchedulerState::on_fetch_failed(WorkerId w, const FetchFailed& m, Outbox& out) {
  Task* t = tasks_.lookup(m.task);
  if (!t || t->state != TaskState::processing || t->processing_on != w) return;
  std::uint32_t slot = slot_of(m.task);
  transition(slot, TaskEvent::reschedule(), out);
  make_ready_or_wait(slot, out);
  dispatch(out);
}

// Purpose: the periodic pass (every heartbeat_ms).
// Action: silent workers and clients are declared dead and removed; everyone alive gets a
//   Heartbeat; unrunnable tasks are retried (or failed after no_worker_timeout_ms); queued roots
//   are dealt; with the root queue empty, idle workers steal.
SchedulerState::TickResult SchedulerState::tick(std::uint64_t now, Outbox& out) {
  now_ms_ = now;
  TickResult r;
  for (auto& w : workers_) {
    if (w.alive && now > w.last_seen_ms + config_.worker_timeout_ms) r.dead_workers.push_back(w.id);
    if (w.alive && !w.processing.empty()) w.last_busy_ms = now;  // idle time for adapt (info()["workers"])
  }
  for (auto& c : clients_) {
    if (c.alive && now > c.last_seen_ms + config_.client_timeout_ms) r.dead_clients.push_back(c.id);
  }
  for (auto w : r.dead_workers) remove_worker(w, WorkerLoss::heartbeat_timeout(config_.worker_timeout_ms), out);
  r.closed_workers = expire_closed_links(now, out);
  for (auto c : r.dead_clients) remove_client(c, out);
  for (const auto& w : workers_) {
    if (w.alive) out.worker(w.id, Heartbeat{now});
  }
  for (const auto& c : clients_) {
    if (c.alive) out.client(c.id, Heartbeat{now});
  }
  retry_unrunnable(now, out);
  dispatch(out);
  if (root_queue_.empty()) steal_for_idle(out);
  if (!retiring_.empty()) advance_retirements(out);
  return r;
}

std::vector<WorkerId> SchedulerState::expire_closed_links(std::uint64_t now, Outbox& out) {
  std::vector<WorkerId> lost;
  for (auto& w : workers_) {
    if (w.alive && w.link_closed_ms != 0 && now >= w.link_closed_ms + config_.heartbeat_ms) lost.push_back(w.id);
  }
  for (auto w : lost) remove_worker(w, WorkerLoss::connection_lost(), out);
  return lost;
}

void SchedulerState::connection_closed(WorkerId w, std::uint64_t now) {
  if (w.value >= workers_.size() || !workers_[w.value].alive) return;
  if (workers_[w.value].link_closed_ms == 0) workers_[w.value].link_closed_ms = now;
}

void SchedulerState::forgive_silence(std::uint64_t now) {
  for (auto& w : workers_) {
    w.last_seen_ms = std::max(w.last_seen_ms, now);
    if (w.link_closed_ms != 0) w.link_closed_ms = now;  // what it said meanwhile may still be unread
  }
  for (auto& c : clients_) c.last_seen_ms = std::max(c.last_seen_ms, now);
}

// ---------------------------------------------------------------------------------------------
// graph helpers

// A released task becomes ready (placed or queued) or waits for its inputs; inputs that are
// released too (their data was dropped or lost) are brought back the same way (no recursion).
void SchedulerState::make_ready_or_wait(std::uint32_t start, Outbox& out) {
  std::vector<std::uint32_t> stack{start};
  while (!stack.empty()) {
    std::uint32_t slot = stack.back();
    stack.pop_back();
    Task& t = tasks_[slot];
    if (t.state != TaskState::released) continue;
    if (t.waiting_on == 0) {
      schedule_ready(slot, out);
      continue;
    }
    transition(slot, TaskEvent::wait_for_inputs(), out);
    // Inputs whose data was dropped or lost are computed again.
    for (auto d : deps_of(tasks_[slot])) {
      if (tasks_[d].state == TaskState::released) stack.push_back(d);
    }
  }
}

// The task fails, and every dependent with it, all sharing one Failure (what the clients hear).
void SchedulerState::fail(std::uint32_t start, const std::string& func, const std::string& message, bool cancelled,
                          Outbox& out) {
  auto failure = std::make_shared<const Failure>(Failure{func, message});
  if (!cancelled && start < tasks_.slots()) {  // the task's own failure, for the dashboard and report
    const Task& t0 = tasks_[start];
    const WorkerRecord* on = t0.state == TaskState::processing ? worker(t0.processing_on) : nullptr;
    observatory_.on_error(func, std::string(key_of(t0)), on ? on->info.name : std::string(), message, now_ms_);
  }
  std::vector<std::uint32_t> stack{start};
  while (!stack.empty()) {
    std::uint32_t slot = stack.back();
    stack.pop_back();
    Task& t = tasks_[slot];
    // Finished or gone: a failure elsewhere does not undo them (skipped here, not refused by the
    // table, so that refusals stay the sign of a bug).
    if (t.state == TaskState::memory || t.state == TaskState::erred || t.state == TaskState::forgotten) continue;
    if (!transition(slot, TaskEvent::fail(failure, cancelled), out).ok) continue;
    for (auto d : tasks_[slot].dependents) stack.push_back(d);
  }
}

// A result nobody needs any more leaves the workers: forgotten if nothing refers to it, else its
// data is dropped (a dependent may need it again if a later loss sends it back).
void SchedulerState::maybe_release_data(std::uint32_t slot, Outbox& out) {
  Task& t = tasks_[slot];
  if (t.state != TaskState::memory || needed(t)) return;
  if (t.dependents.empty()) {
    forget_queue_.push_back(slot);
  } else {
    transition(slot, TaskEvent::drop_data(), out);
  }
}

// Forgets every queued slot that nobody wants and nothing depends on; forgetting one task may
// free its inputs, which land on the same queue (no recursion, so long chains are fine).
void SchedulerState::maybe_forget(std::uint32_t slot, Outbox& out) {
  if (slot != kNoSlot) forget_queue_.push_back(slot);
  if (forgetting_) return;
  forgetting_ = true;
  while (!forget_queue_.empty()) {
    std::uint32_t s = forget_queue_.back();
    forget_queue_.pop_back();
    Task& t = tasks_[s];
    if (t.state == TaskState::forgotten || !t.wanted_by.empty() || !t.dependents.empty()) continue;
    if (!attempts_.empty()) attempts_.erase(t.id.value);
    if (!deaths_.empty()) deaths_.erase(t.id.value);
    transition(s, TaskEvent::forget(), out);
  }
  forgetting_ = false;
}

void SchedulerState::notify_done(const Task& t, const TaskEvent& finished, Outbox& out) {
  if (t.wanted_by.empty()) return;
  std::vector<std::string> holders;
  for (auto h : t.who_has) holders.push_back(workers_[h.value].info.address);
  for (ClientId c : t.wanted_by) {
    if (finished.reported_by == c) continue;  // its receipt reported the result: it has it
    KeyDone m{std::string(key_of(t)), t.id, holders, t.nbytes, false, {}};
    if (finished.result) {
      m.has_data = true;
      m.data = *finished.result;
    }
    // Also to a client the worker pushed the result to but that has not said so (yet): a pushed
    // copy can be lost with a broken connection, and this is then the only word it gets.
    out.client(c, std::move(m));
  }
}

// ---------------------------------------------------------------------------------------------
// queries

const Task* SchedulerState::find(std::string_view key) const {
  std::uint32_t slot = tasks_.slot_of_key(key);
  return slot == kNoSlot ? nullptr : &tasks_[slot];
}

const Task* SchedulerState::task(std::uint32_t slot) const {
  return slot < tasks_.slots() && tasks_[slot].state != TaskState::forgotten ? &tasks_[slot] : nullptr;
}
const WorkerRecord* SchedulerState::worker(WorkerId id) const {
  return id.value < workers_.size() ? &workers_[id.value] : nullptr;
}
const WorkerRecord* SchedulerState::worker_by_identity(const std::string& identity) const {
  auto it = worker_identities_.find(identity);
  return it == worker_identities_.end() ? nullptr : &workers_[it->second.value];
}
const ClientRecord* SchedulerState::client(ClientId id) const {
  return id.value < clients_.size() ? &clients_[id.value] : nullptr;
}
const ClientRecord* SchedulerState::client_by_identity(const std::string& identity) const {
  auto it = client_identities_.find(identity);
  return it == client_identities_.end() ? nullptr : &clients_[it->second.value];
}
std::vector<WorkerId> SchedulerState::alive_workers() const {
  std::vector<WorkerId> out;
  for (const auto& w : workers_) {
    if (w.alive) out.push_back(w.id);
  }
  return out;
}
std::vector<ClientId> SchedulerState::alive_clients() const {
  std::vector<ClientId> out;
  for (const auto& c : clients_) {
    if (c.alive) out.push_back(c.id);
  }
  return out;
}

nlohmann::json SchedulerState::info() const {
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : workers_) {
    if (!w.alive) continue;
    nlohmann::json res = nlohmann::json::object();
    for (const auto& [k, v] : w.info.resources) res[k] = v;
    workers.push_back({{"id", w.id.value},
                       {"name", w.info.name},
                       {"host", w.info.host},
                       {"address", w.info.address},
                       {"nthreads", w.info.nthreads},
                       {"rank", w.info.rank},
                       {"pid", w.info.pid},
                       {"memory_limit", w.memory_reported && w.memory.limit ? w.memory.limit : w.info.memory_limit},
                       {"resources", res},
                       {"processing", w.processing.size()},
                       {"in_memory", w.has_what.size()},
                       {"nbytes", w.nbytes},
                       {"retiring", w.retiring || w.retire_asked},
                       {"idle_ms", w.processing.empty() && now_ms_ > w.last_busy_ms ? now_ms_ - w.last_busy_ms : 0},
                       // Its last memory report (memory.cpp); zeros before the first.
                       {"memory_held", w.memory.held},
                       {"memory_spilled", w.memory.spilled},
                       {"spilled_count", w.memory.spilled_count},
                       {"memory_process", w.memory.process},
                       {"paused", w.paused()}});
  }
  nlohmann::json states = nlohmann::json::object();
  for (std::size_t s = 0; s + 1 < kNumTaskStates; ++s) states[to_string(static_cast<TaskState>(s))] = counts_[s];
  nlohmann::json counters = {{"completions_reported_by_clients", receipts_accepted_},
                              {"placed_where_started_early", early_placed_},
                              {"stale_messages", stale_messages_},
                              {"refused_transitions", refused_transitions_},
                              {"workers_died", workers_died_},
                              {"tasks_killed", tasks_killed_},
                              {"workers_retired", workers_retired_}, {"results_handed_over", results_handed_over_},
                              {"worker_pauses", worker_pauses_}};
  // The two fast-path counters and worker_pauses also stay at the top level, where clients read them.
  return {{"workers", workers},
          {"tasks_by_state", states},
          {"n_tasks", tasks_.size()},
          {"counters", counters},
          {"completions_reported_by_clients", receipts_accepted_},
          {"placed_where_started_early", early_placed_},
          {"worker_pauses", worker_pauses_}};
}


// ---- observability (docs/dashboard.md) ----------------------------------------------------

// Purpose: a worker's runs, per-function totals, fetches and log lines since its last report.
// Input:   Telemetry (worker/telemetry.hpp), with its heartbeat.
// Action:  hands it to the observatory, naming each run's task by key while the task is known.
// Caveats: a task forgotten before the report arrives is named by its function only.
void SchedulerState::on_telemetry(WorkerId w, const protocol::Telemetry& m) {
  observatory_.on_telemetry(
      workers_[w.value].info.name, m,
      [this](TaskId id) {
        const Task* t = tasks_.lookup(id);
        return t ? std::string(key_of(*t)) : std::string();
      },
      now_ms_);
}

std::uint64_t SchedulerState::finished_total() const {
  std::uint64_t done = 0;
  for (const auto& fc : func_counts_) done += fc.done;
  return done;
}

std::vector<Observatory::Progress> SchedulerState::progress() const {
  std::vector<Observatory::Progress> rows;
  rows.reserve(func_counts_.size());
  for (std::size_t f = 0; f < func_counts_.size(); ++f) {
    rows.push_back({func_name(static_cast<std::uint32_t>(f)), func_counts_[f].done, func_counts_[f].erred});
  }
  return rows;
}

nlohmann::json SchedulerState::snapshot(std::uint64_t now, const nlohmann::json& scheduler) const {
  nlohmann::json snap = info();
  snap.erase("counters");
  snap["version"] = 1;
  snap["time_ms"] = observatory_.wall(now);
  snap["scheduler"] = scheduler;
  for (auto& w : snap["workers"]) {
    const WorkerRecord* rec = worker(WorkerId{w["id"].get<std::uint32_t>()});
    w["last_seen_s"] = rec && now > rec->last_seen_ms ? static_cast<double>(now - rec->last_seen_ms) / 1000.0 : 0.0;
  }
  nlohmann::json rows = nlohmann::json::array();
  auto at = [](const FuncCounts& fc, TaskState s) { return fc.now[static_cast<std::size_t>(s)]; };
  for (std::size_t f = 0; f < func_counts_.size(); ++f) {
    const FuncCounts& fc = func_counts_[f];
    rows.push_back({{"name", func_name(static_cast<std::uint32_t>(f))},
                    {"done", fc.done},
                    {"erred", fc.erred},
                    {"running", at(fc, TaskState::processing)},
                    {"waiting", at(fc, TaskState::released) + at(fc, TaskState::waiting) + at(fc, TaskState::queued)},
                    {"in_memory", at(fc, TaskState::memory)}});
  }
  snap["progress"] = std::move(rows);
  observatory_.fill_snapshot(snap, progress(), now);
  std::uint64_t submitted = 0;
  for (const auto& fc : func_counts_) submitted += fc.submitted;
  snap["totals"]["submitted"] = submitted;
  snap["started_ms"] = observatory_.started_ms();
  return snap;
}

nlohmann::json SchedulerState::report(std::uint64_t now, std::uint64_t since_ms, const nlohmann::json& scheduler) const {
  return observatory_.report(now, since_ms, scheduler, progress());
}

nlohmann::json SchedulerState::answer_info(const protocol::InfoRequest& m) const {
  if (m.what.empty() || m.what == "info") return info();
  if (m.what == "logs") return observatory_.logs(Observatory::kMaxLogLines);
  if (m.what == "report") return report(now_ms_, m.since_ms, process_info_);
  return nlohmann::json{{"error", "unknown request '" + m.what.substr(0, 64) + "' (known: info, logs, report)"}};
}

}  // namespace dtask::scheduler

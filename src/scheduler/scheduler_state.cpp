// The scheduler's brain: one handler per request, placement, queueing, stealing, failure recovery.
#include "scheduler/scheduler_state.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

namespace dtask::scheduler {

using namespace protocol;

namespace {

// Arguments in the arena are LEB128-style varints: most lengths and counts fit one byte.
std::size_t varint_size(std::size_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
char* put_varint(char* p, std::size_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
std::size_t get_varint(const char*& p) {
  std::size_t v = 0;
  for (int shift = 0;; shift += 7) {
    auto b = static_cast<unsigned char>(*p++);
    v |= static_cast<std::size_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return v;
  }
}

}  // namespace

SchedulerState::SchedulerState(SchedulerConfig config) : config_(config) {}

// ---------------------------------------------------------------------------------------------
// peers

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
  for (const auto& w : workers_) {
    if (w.alive && w.info.name == reg.name) return refuse("a worker named '" + reg.name + "' is already registered");
  }
  WorkerRecord rec;
  rec.id = WorkerId{static_cast<std::uint32_t>(workers_.size())};
  rec.identity = identity;
  rec.info = reg;
  rec.last_seen_ms = now;
  rec.capacity = capacity(rec);
  WorkerWelcome welcome;
  welcome.worker = rec.id;
  welcome.heartbeat_ms = config_.heartbeat_ms;
  welcome.peers.push_back(Peer{rec.id, reg.address});
  WorkerId id = rec.id;
  worker_identities_[identity] = id;
  workers_.push_back(std::move(rec));
  note_room(workers_.back());
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
  out.client(rec.id, ClientWelcome{kProtocolVersion, rec.id});
  return rec.id;
}

void SchedulerState::remove_worker(WorkerId wid, const std::string& /*reason*/, Outbox& out) {
  if (wid.value >= workers_.size() || !workers_[wid.value].alive) return;
  auto& rec = workers_[wid.value];
  rec.alive = false;
  worker_identities_.erase(rec.identity);
  std::vector<std::uint32_t> reschedule;

  // Work in flight there starts again elsewhere.
  for (auto slot : std::vector<std::uint32_t>(rec.processing.begin(), rec.processing.end())) {
    if (transition(slot, TaskState::released, out).ok) reschedule.push_back(slot);
  }
  // Results whose only copy was there are lost: anything still needing them recomputes them.
  for (auto slot : std::vector<std::uint32_t>(rec.has_what.begin(), rec.has_what.end())) {
    Task& t = tasks_[slot];
    t.who_has.erase_all(wid);
    if (!t.who_has.empty() || t.state != TaskState::memory) continue;
    for (ClientId c : t.wanted_by) out.client(c, KeyLost{std::string(key_of(t))});
    transition(slot, TaskState::released, out);
    for (auto d : tasks_[slot].dependents.to_vector()) {
      Task& dt = tasks_[d];
      if (dt.state == TaskState::processing) {
        if (dt.processing_on != kNoWorker && workers_[dt.processing_on.value].alive) {
          out.worker(dt.processing_on, ReleaseTasks{{dt.id}});
        }
        transition(d, TaskState::released, out);
        reschedule.push_back(d);
      } else if (dt.state == TaskState::queued) {
        transition(d, TaskState::released, out);
        reschedule.push_back(d);
      }
    }
    if (needed(tasks_[slot])) {
      reschedule.push_back(slot);
    } else {
      forget_queue_.push_back(slot);
    }
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

void SchedulerState::remove_client(ClientId cid, Outbox& out) {
  if (cid.value >= clients_.size() || !clients_[cid.value].alive) return;
  clients_[cid.value].alive = false;
  client_identities_.erase(clients_[cid.value].identity);
  std::vector<std::uint32_t> touched;
  for (std::uint32_t slot = 0; slot < tasks_.size(); ++slot) {
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
  std::visit(
      [&](auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, TaskDone>) on_task_done(from, m, out);
        else if constexpr (std::is_same_v<M, TaskFailed>) on_task_failed(from, m, out);
        else if constexpr (std::is_same_v<M, ReplicasAdded>) on_replicas_added(from, m, out);
        else if constexpr (std::is_same_v<M, StealReply>) on_steal_reply(from, m, out);
        else if constexpr (std::is_same_v<M, FetchFailed>) on_fetch_failed(from, m, out);
        else if constexpr (std::is_same_v<M, WorkerGoodbye>) {
          remove_worker(from, "goodbye", out);
          if (m.code != 0 && config_.stop_job_when_worker_signalled) {
            request_shutdown(m.code, "worker " + workers_[from.value].info.name + " was stopped by a signal", out);
          }
        }
        else if constexpr (std::is_same_v<M, Heartbeat>) {}
        else if constexpr (std::is_same_v<M, RegisterWorker>) ++stale_messages_;  // already registered
      },
      msg);
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
        if constexpr (std::is_same_v<M, SubmitTasks>) on_submit(from, m, now, out);
        else if constexpr (std::is_same_v<M, ReleaseKeys>) on_release_keys(from, m, out);
        else if constexpr (std::is_same_v<M, CancelKeys>) on_cancel_keys(from, m, out);
        else if constexpr (std::is_same_v<M, InfoRequest>) out.client(from, InfoReply{m.request_id, info()});
        else if constexpr (std::is_same_v<M, ShutdownCluster>) request_shutdown(m.code, "the client asked for shutdown", out);
        else if constexpr (std::is_same_v<M, ClientGoodbye>) remove_client(from, out);
        else if constexpr (std::is_same_v<M, ResultsReceived>) on_results_received(from, m, out);
        else if constexpr (std::is_same_v<M, Heartbeat>) {}
        else if constexpr (std::is_same_v<M, RegisterClient>) ++stale_messages_;
      },
      msg);
}

std::uint32_t SchedulerState::intern_func(const std::string& name) {
  auto it = func_index_.find(name);
  if (it != func_index_.end()) return it->second;
  auto idx = static_cast<std::uint32_t>(func_names_.size());
  func_names_.push_back(name);
  func_index_.emplace(name, idx);
  return idx;
}

std::uint32_t SchedulerState::allocate_slot() {
  if (!free_slots_.empty()) {
    auto slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  auto slot = static_cast<std::uint32_t>(tasks_.size());
  tasks_.emplace_back();
  tasks_.back().id = make_task_id(slot, 0);
  return slot;
}

std::uint32_t SchedulerState::slot_of_key(std::string_view key) const {
  return key_index_.find(key, [this](std::uint32_t slot) { return key_of(tasks_[slot]); });
}

TaskExtras& SchedulerState::extras_for(std::uint32_t slot) {
  tasks_[slot].has_extras = true;
  return extras_[slot];
}

void SchedulerState::set_failure(std::uint32_t slot, std::shared_ptr<const Failure> f) {
  failures_[slot] = std::move(f);
}

void SchedulerState::free_task_storage(std::uint32_t slot) {
  Task& t = tasks_[slot];
  arena_.release(t.blob);
  t.blob = {};
  t.key_size = 0;
  t.n_deps = 0;
  if (t.has_extras) extras_.erase(slot);
  t.has_extras = false;
  failures_.erase(slot);
}

// Blob layout: [input slots, 4 bytes each][key][varint n_args, then per argument: kind byte,
// and either varint length + MessagePack header (a value) or varint count + slots (inputs)].
// Inputs are stored as slots, not task ids: an input cannot be forgotten while this task exists,
// so its current id is always the one the task was submitted against.
void SchedulerState::store_spec(std::uint32_t slot, TaskSpec& spec, std::string& bad) {
  auto& refs = scratch_refs_;
  auto& deps = scratch_deps_;
  refs.clear();
  deps.clear();
  std::unordered_set<std::uint32_t> seen;  // only for long input lists, where a scan would be quadratic
  bool frames = false;
  std::size_t args_bytes = varint_size(spec.args.size());
  for (const auto& a : spec.args) {
    args_bytes += 1;
    if (a.kind == ClientArg::value) {
      if (!a.data.frames.empty()) frames = true;
      args_bytes += varint_size(a.data.header.size()) + a.data.header.size();
      continue;
    }
    args_bytes += varint_size(a.refs.size()) + 4 * a.refs.size();
    for (const auto& key : a.refs) {
      std::uint32_t d = slot_of_key(key);  // this task's own key is not indexed yet: a self-reference is unknown
      if (d == kNoSlot) {
        if (bad.empty()) bad = "depends on unknown key '" + key + "' (never submitted, or already released)";
        refs.push_back(kNoSlot);
        continue;
      }
      refs.push_back(d);
      bool dup = deps.size() < 16 ? std::find(deps.begin(), deps.end(), d) != deps.end() : false;
      if (deps.size() == 16 && seen.empty()) seen.insert(deps.begin(), deps.end());
      if (deps.size() >= 16) dup = !seen.insert(d).second;
      if (!dup) deps.push_back(d);
    }
  }
  if (frames) args_bytes = 0;

  Task& t = tasks_[slot];
  t.blob = arena_.allocate(deps.size() * 4 + spec.key.size() + args_bytes);
  t.n_deps = static_cast<std::uint32_t>(deps.size());
  t.key_size = static_cast<std::uint32_t>(spec.key.size());
  char* p = arena_.data(t.blob);
  if (!deps.empty()) std::memcpy(p, deps.data(), deps.size() * 4);
  p += deps.size() * 4;
  if (!spec.key.empty()) std::memcpy(p, spec.key.data(), spec.key.size());
  p += spec.key.size();
  std::size_t r = 0;
  if (frames) {
    TaskExtras& ex = extras_for(slot);
    ex.args_here = true;
    auto& args = ex.args;
    args.reserve(spec.args.size());
    for (auto& a : spec.args) {
      TaskArg ta;
      ta.kind = a.kind;
      if (a.kind == ClientArg::value) {
        ta.data = std::move(a.data);
      } else {
        ta.refs.reserve(a.refs.size());
        for (std::size_t i = 0; i < a.refs.size(); ++i, ++r) {
          ta.refs.push_back(refs[r] == kNoSlot ? TaskId{} : tasks_[refs[r]].id);
        }
      }
      args.push_back(std::move(ta));
    }
  } else {
    p = put_varint(p, spec.args.size());
    for (const auto& a : spec.args) {
      *p++ = static_cast<char>(a.kind);
      if (a.kind == ClientArg::value) {
        p = put_varint(p, a.data.header.size());
        if (!a.data.header.empty()) std::memcpy(p, a.data.header.data(), a.data.header.size());
        p += a.data.header.size();
      } else {
        p = put_varint(p, a.refs.size());
        if (!a.refs.empty()) std::memcpy(p, refs.data() + r, a.refs.size() * 4);
        p += a.refs.size() * 4;
        r += a.refs.size();
      }
    }
  }
  key_index_.insert(key_of(t), slot);
}

void SchedulerState::on_submit(ClientId c, SubmitTasks& m, std::uint64_t now, Outbox& out) {
  (void)now;
  struct Fresh {
    std::uint32_t slot;
    std::string bad;  // why it cannot run, if it cannot
    std::uint64_t early_nonce = 0;
    WorkerId early_on;
  };
  std::vector<Fresh> fresh;
  fresh.reserve(m.tasks.size());
  for (auto& spec : m.tasks) {
    std::uint32_t existing = slot_of_key(spec.key);
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
    std::uint32_t slot = allocate_slot();
    Task& t = tasks_[slot];
    TaskId id = t.id;
    t = Task{};
    t.id = id;
    t.state = TaskState::released;
    ++counts_[static_cast<std::size_t>(TaskState::released)];
    t.func = intern_func(spec.func);
    t.priority = spec.priority;
    t.seq = next_seq_++;
    t.retries_left = spec.retries;
    t.allow_other = spec.allow_other_workers;
    t.push_result = spec.push_result && spec.wanted;  // enter_processing names who can take it
    if (!spec.workers.empty() || !spec.resources.empty()) {
      auto& ex = extras_for(slot);
      ex.restrictions = std::move(spec.workers);
      ex.resources = std::move(spec.resources);
    }
    if (spec.wanted) t.wanted_by.push_back(c);
    std::string bad;
    store_spec(slot, spec, bad);
    Task& tt = tasks_[slot];
    for (auto d : deps_of(tt)) {
      Task& dt = tasks_[d];
      dt.dependents.push_back(slot);
      ++dt.unfinished_dependents;
      if (dt.state != TaskState::memory) ++tt.waiting_on;
    }
    fresh.push_back({slot, std::move(bad), spec.early_nonce, spec.early_on});
  }
  for (auto& f : fresh) {
    Task& t = tasks_[f.slot];
    if (t.state != TaskState::released) continue;
    if (!f.bad.empty()) {
      fail(f.slot, func_names_[t.func], f.bad, false, out);
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

bool SchedulerState::place_early(std::uint32_t slot, std::uint64_t nonce, WorkerId w, Outbox& out) {
  Task& t = tasks_[slot];
  // Only a task that is ready now and would wait in the root queue for a free thread anyway;
  // a worker that is busy (in this scheduler's view) gets nothing extra. If the worker started
  // it regardless, its early result is simply never used.
  if (t.state != TaskState::queued || t.n_deps != 0 || w.value >= workers_.size()) return false;
  const WorkerRecord& rec = workers_[w.value];
  if (!rec.alive || rec.processing.size() + rec.stealing_in >= rec.info.nthreads || !worker_can_run(rec, t, true)) {
    return false;
  }
  early_slot_ = slot;
  early_nonce_ = nonce;
  assign(slot, w, out);  // the root queue's entry for it is skipped as placed meanwhile
  early_slot_ = kNoSlot;
  early_nonce_ = 0;
  ++early_placed_;
  return true;
}

void SchedulerState::on_release_keys(ClientId c, const ReleaseKeys& m, Outbox& out) {
  for (const auto& key : m.keys) {
    std::uint32_t slot = slot_of_key(key);
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

void SchedulerState::on_cancel_keys(ClientId, const CancelKeys& m, Outbox& out) {
  for (const auto& key : m.keys) {
    std::uint32_t slot = slot_of_key(key);
    if (slot == kNoSlot) continue;
    Task& t = tasks_[slot];
    if (t.state == TaskState::memory || t.state == TaskState::erred) {
      for (ClientId c : t.wanted_by) out.client(c, KeyCancelled{std::string(key_of(t)), "cancelled by the client"});
      continue;
    }
    fail(slot, func_names_[t.func], "cancelled by the client", true, out);
  }
  dispatch(out);
}

void SchedulerState::on_task_done(WorkerId w, const TaskDone& m, Outbox& out) {
  Task* t = lookup(m.task);
  if (!t || t->state != TaskState::processing || t->processing_on != w) {
    // Late news about a task released, stolen or forgotten meanwhile (or already reported by
    // the client it was pushed to): the worker drops the copy unless it is still the holder.
    ++stale_messages_;
    bool useful = t && t->state == TaskState::memory && t->who_has.contains(w);
    if (!useful) out.worker(w, ReleaseTasks{{m.task}});
    return;
  }
  // Held only until enter_memory has told the waiting clients (notify_done), never stored.
  inline_result_ = m.has_data ? &m.data : nullptr;
  finish_on(w, slot_of(m.task), m.nbytes, out);
  inline_result_ = nullptr;
  after_finished({&w, 1}, out);  // no vector: this is the hot path
}

void SchedulerState::on_results_received(ClientId c, const ResultsReceived& m, Outbox& out) {
  std::vector<WorkerId> finished_on;
  for (const auto& r : m.receipts) {
    Task* t = nullptr;
    if (r.key.empty()) {
      t = lookup(r.task);
    } else if (std::uint32_t slot = slot_of_key(r.key); slot != kNoSlot) {
      t = &tasks_[slot];  // an early start's result: the worker knew no task id
    }
    // Only a receipt for what this scheduler would have heard about from that worker counts;
    // anything else (stolen meanwhile, already reported, not pushed to this client) is
    // ignored and the worker's TaskDone decides.
    if (!t || t->state != TaskState::processing || t->processing_on != r.worker || !t->push_result ||
        !t->wanted_by.contains(c)) {
      ++stale_messages_;
      continue;
    }
    receipt_from_ = &c;
    finish_on(r.worker, slot_of(t->id), r.nbytes, out);
    receipt_from_ = nullptr;
    ++receipts_accepted_;
    finished_on.push_back(r.worker);
  }
  if (!finished_on.empty()) after_finished(finished_on, out);
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

void SchedulerState::finish_on(WorkerId w, std::uint32_t slot, std::uint64_t nbytes, Outbox& out) {
  Task& t = tasks_[slot];
  t.nbytes = nbytes;
  t.who_has.assign_one(w);
  auto& rec = workers_[w.value];
  rec.has_what.insert(slot);
  rec.nbytes += nbytes;
  // An exponential average (weight 1/8): one big result is enough to stop dealing ahead.
  rec.result_bytes_avg = (rec.result_bytes_avg * 7 + nbytes) / 8;
  rec.capacity = capacity(rec);
  transition(slot, TaskState::memory, out);
}

void SchedulerState::on_task_failed(WorkerId w, const TaskFailed& m, Outbox& out) {
  Task* t = lookup(m.task);
  if (!t || t->state != TaskState::processing || t->processing_on != w) {
    ++stale_messages_;
    return;
  }
  std::uint32_t slot = slot_of(m.task);
  if (t->retries_left > 0) {
    --t->retries_left;
    transition(slot, TaskState::released, out);
    make_ready_or_wait(slot, out);
  } else {
    fail(slot, func_names_[t->func], m.message, false, out);
  }
  maybe_forget(kNoSlot, out);
  dispatch(out);
}

void SchedulerState::on_replicas_added(WorkerId w, const ReplicasAdded& m, Outbox& out) {
  std::vector<TaskId> unwanted;
  for (TaskId id : m.tasks) {
    Task* t = lookup(id);
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

void SchedulerState::on_steal_reply(WorkerId w, const StealReply& m, Outbox& out) {
  Task* t = lookup(m.task);
  if (!t || !t->steal_pending || t->processing_on != w) return;
  WorkerId thief = t->steal_thief;
  auto& thief_rec = workers_[thief.value];
  if (thief_rec.stealing_in > 0) --thief_rec.stealing_in;
  t->steal_pending = false;
  t->steal_thief = kNoWorker;
  if (!m.stolen || t->state != TaskState::processing) return;
  std::uint32_t slot = slot_of(m.task);
  transition(slot, TaskState::released, out);
  if (thief_rec.alive && worker_can_run(thief_rec, tasks_[slot], true)) {
    assign(slot, thief, out);
  } else {
    make_ready_or_wait(slot, out);
  }
  dispatch(out);
}

void SchedulerState::on_fetch_failed(WorkerId w, const FetchFailed& m, Outbox& out) {
  Task* t = lookup(m.task);
  if (!t || t->state != TaskState::processing || t->processing_on != w) return;
  std::uint32_t slot = slot_of(m.task);
  transition(slot, TaskState::released, out);
  make_ready_or_wait(slot, out);
  dispatch(out);
}

SchedulerState::TickResult SchedulerState::tick(std::uint64_t now, Outbox& out) {
  now_ms_ = now;
  TickResult r;
  for (auto& w : workers_) {
    if (w.alive && now > w.last_seen_ms + config_.worker_timeout_ms) r.dead_workers.push_back(w.id);
  }
  for (auto& c : clients_) {
    if (c.alive && now > c.last_seen_ms + config_.client_timeout_ms) r.dead_clients.push_back(c.id);
  }
  for (auto w : r.dead_workers) remove_worker(w, "heartbeat timeout", out);
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
  return r;
}

void SchedulerState::forgive_silence(std::uint64_t now) {
  for (auto& w : workers_) w.last_seen_ms = std::max(w.last_seen_ms, now);
  for (auto& c : clients_) c.last_seen_ms = std::max(c.last_seen_ms, now);
}

// ---------------------------------------------------------------------------------------------
// graph helpers

Task* SchedulerState::lookup(TaskId id) {
  std::uint32_t slot = slot_of(id);
  if (slot >= tasks_.size()) return nullptr;
  Task& t = tasks_[slot];
  if (t.id != id || t.state == TaskState::forgotten) return nullptr;
  return &t;
}

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
    transition(slot, TaskState::waiting, out);
    // Inputs whose data was dropped or lost are computed again.
    for (auto d : deps_of(tasks_[slot])) {
      if (tasks_[d].state == TaskState::released) stack.push_back(d);
    }
  }
}

void SchedulerState::schedule_ready(std::uint32_t slot, Outbox& out) {
  Task& t = tasks_[slot];
  if (is_root(t)) {
    transition(slot, TaskState::queued, out);
    return;
  }
  if (auto w = decide_worker(t)) {
    assign(slot, *w, out);
  } else {
    transition(slot, TaskState::queued, out);
  }
}

void SchedulerState::assign(std::uint32_t slot, WorkerId w, Outbox& out) {
  tasks_[slot].processing_on = w;
  auto r = transition(slot, TaskState::processing, out);
  if (!r.ok) tasks_[slot].processing_on = kNoWorker;
}

std::uint32_t SchedulerState::capacity(const WorkerRecord& w) const {
  auto base = static_cast<std::uint32_t>(std::ceil(w.info.nthreads * config_.saturation));
  bool small_results = w.result_bytes_avg <= config_.saturation_extra_max_result_bytes;
  return std::max<std::uint32_t>(1, base + (small_results ? config_.saturation_extra : 0));
}

void SchedulerState::note_room(WorkerRecord& w) {
  if (w.in_room || !w.alive || w.processing.size() >= w.capacity) return;
  w.in_room = true;
  room_.push_back(w.id);
}

void SchedulerState::dispatch(Outbox& out) {
  if (root_queue_.empty() || room_.empty()) return;
  // Deal queued root tasks round-robin, one per worker with a free slot per pass, so a short
  // queue is spread over the cluster instead of filling the first worker. Only workers listed in
  // room_ are visited; a full or dead one is unlisted here and listed again when a task leaves it.
  bool progress = true;
  while (progress && !root_queue_.empty()) {
    progress = false;
    for (std::size_t i = 0; i < room_.size() && !root_queue_.empty();) {
      auto& w = workers_[room_[i].value];
      if (!w.alive || w.processing.size() >= w.capacity) {
        w.in_room = false;
        room_[i] = room_.back();
        room_.pop_back();
        continue;
      }
      while (!root_queue_.empty()) {
        QueueEntry e = root_queue_.top();
        root_queue_.pop();
        const Task& t = tasks_[e.slot];
        // Cancelled, forgotten (the slot may hold another task by now) or already placed meanwhile.
        if (t.seq != e.seq || t.state != TaskState::queued) continue;
        assign(e.slot, w.id, out);
        progress = true;
        break;
      }
      ++i;
    }
  }
}

void SchedulerState::steal_for_idle(Outbox& out) {
  // One pass to find the worker with the most tasks waiting behind its threads; with none there
  // is nothing to steal (the common case), so this stays O(workers) even at 1,000 workers.
  WorkerRecord* victim = nullptr;
  std::size_t best_surplus = 1;
  for (auto& v : workers_) {
    if (!v.alive) continue;
    std::size_t surplus = v.processing.size() > v.info.nthreads ? v.processing.size() - v.info.nthreads : 0;
    if (surplus > best_surplus) {
      best_surplus = surplus;
      victim = &v;
    }
  }
  if (!victim) return;
  std::size_t budget = best_surplus / 2;  // never take more than half of what waits there
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
    if (any_alive && now > since_ms + config_.no_worker_timeout_ms) {
      std::string names;
      for (const auto& w : workers_) {
        if (w.alive) names += (names.empty() ? "" : ", ") + w.info.name;
      }
      std::string want;
      for (const auto& r : restrictions_of(t)) want += (want.empty() ? "" : ", ") + r;
      std::string res;
      for (const auto& [k, v] : resources_of(t)) res += (res.empty() ? "" : ", ") + k + "=" + std::to_string(v);
      fail(slot, func_names_[t.func],
           "no worker can run it (workers=[" + want + "], resources={" + res + "}; workers present: " + names + ")",
           false, out);
    }
  }
}

void SchedulerState::fail(std::uint32_t start, const std::string& func, const std::string& message, bool cancelled,
                          Outbox& out) {
  auto failure = std::make_shared<const Failure>(Failure{func, message});
  std::vector<std::uint32_t> stack{start};
  while (!stack.empty()) {
    std::uint32_t slot = stack.back();
    stack.pop_back();
    Task& t = tasks_[slot];
    if (t.state == TaskState::memory || t.state == TaskState::erred || t.state == TaskState::forgotten) continue;
    set_failure(slot, failure);
    t.cancelled = cancelled;
    if (!transition(slot, TaskState::erred, out).ok) {
      failures_.erase(slot);
      t.cancelled = false;
      continue;
    }
    for (auto d : tasks_[slot].dependents) stack.push_back(d);
  }
}

void SchedulerState::maybe_release_data(std::uint32_t slot, Outbox& out) {
  Task& t = tasks_[slot];
  if (t.state != TaskState::memory || needed(t)) return;
  if (t.dependents.empty()) {
    forget_queue_.push_back(slot);
  } else {
    transition(slot, TaskState::released, out);
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
    transition(s, TaskState::forgotten, out);
  }
  forgetting_ = false;
}

void SchedulerState::notify_done(const Task& t, Outbox& out) {
  if (t.wanted_by.empty()) return;
  std::vector<std::string> holders;
  for (auto h : t.who_has) holders.push_back(workers_[h.value].info.address);
  for (ClientId c : t.wanted_by) {
    if (receipt_from_ && *receipt_from_ == c) continue;  // it told us it has the result
    KeyDone m{std::string(key_of(t)), t.id, holders, t.nbytes, false, {}};
    if (inline_result_) {
      m.has_data = true;
      m.data = *inline_result_;
    }
    // Also to a client the worker pushed the result to but that has not said so (yet): a pushed
    // copy can be lost with a broken connection, and this is then the only word it gets.
    out.client(c, std::move(m));
  }
}

bool SchedulerState::worker_can_run(const WorkerRecord& w, const Task& t, bool honour_restrictions) const {
  if (!w.alive) return false;
  if (!t.has_extras) return true;
  const TaskExtras& ex = extras_.at(slot_of(t.id));
  for (const auto& [name, amount] : ex.resources) {
    auto it = std::find_if(w.info.resources.begin(), w.info.resources.end(),
                           [&](const auto& r) { return r.first == name; });
    if (it == w.info.resources.end() || it->second < amount) return false;
  }
  if (honour_restrictions && !ex.restrictions.empty()) {
    return std::find(ex.restrictions.begin(), ex.restrictions.end(), w.info.name) != ex.restrictions.end();
  }
  return true;
}

std::optional<WorkerId> SchedulerState::decide_worker(const Task& t) const {
  // With inputs in memory, only their holders are considered first (Dask's rule): most input
  // bytes wins, then the least busy. This keeps placement O(holders), not O(workers).
  auto occupancy = [](const WorkerRecord& w) {
    return static_cast<double>(w.processing.size()) / w.info.nthreads;
  };
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
      if (!best || bytes > best_bytes || (bytes == best_bytes && occupancy(w) < occupancy(*best))) {
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
      if (!best || occupancy(w) < occupancy(*best)) best = &w;
    }
    if (best) return best->id;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// queries

const Task* SchedulerState::find(std::string_view key) const {
  std::uint32_t slot = slot_of_key(key);
  return slot == kNoSlot ? nullptr : &tasks_[slot];
}

std::vector<TaskArg> SchedulerState::args_of(const Task& t) const {
  if (t.has_extras) {
    const TaskExtras& ex = extras_.at(slot_of(t.id));
    if (ex.args_here) return ex.args;
  }
  std::vector<TaskArg> args;
  if (t.blob.empty()) return args;
  const char* p = arena_.data(t.blob) + t.n_deps * 4 + t.key_size;
  std::size_t n = get_varint(p);
  args.resize(n);
  for (auto& a : args) {
    a.kind = static_cast<std::uint8_t>(*p++);
    if (a.kind == TaskArg::value) {
      std::size_t len = get_varint(p);
      a.data.header.assign(p, len);
      p += len;
    } else {
      std::size_t refs = get_varint(p);
      a.refs.reserve(refs);
      for (std::size_t i = 0; i < refs; ++i, p += 4) {
        std::uint32_t d;
        std::memcpy(&d, p, 4);
        a.refs.push_back(d == kNoSlot ? TaskId{} : tasks_[d].id);
      }
    }
  }
  return args;
}

const std::vector<std::string>& SchedulerState::restrictions_of(const Task& t) const {
  static const std::vector<std::string> none;
  return t.has_extras ? extras_.at(slot_of(t.id)).restrictions : none;
}

const Resources& SchedulerState::resources_of(const Task& t) const {
  static const Resources none;
  return t.has_extras ? extras_.at(slot_of(t.id)).resources : none;
}

const Failure* SchedulerState::failure_of(const Task& t) const {
  auto it = failures_.find(slot_of(t.id));
  return it == failures_.end() ? nullptr : it->second.get();
}
const Task* SchedulerState::task(std::uint32_t slot) const {
  return slot < tasks_.size() && tasks_[slot].state != TaskState::forgotten ? &tasks_[slot] : nullptr;
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
                       {"memory_limit", w.info.memory_limit},
                       {"resources", res},
                       {"processing", w.processing.size()},
                       {"in_memory", w.has_what.size()}});
  }
  nlohmann::json states = nlohmann::json::object();
  for (std::size_t s = 0; s + 1 < kNumTaskStates; ++s) states[to_string(static_cast<TaskState>(s))] = counts_[s];
  return {{"workers", workers},
          {"tasks_by_state", states},
          {"n_tasks", key_index_.size()},
          {"completions_reported_by_clients", receipts_accepted_},
          {"placed_where_started_early", early_placed_}};
}

}  // namespace dtask::scheduler

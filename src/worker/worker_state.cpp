// The worker's brain: handlers, job making, completions and fetches, over WorkerOutbox.
#include "worker/worker_state.hpp"

#include <algorithm>

namespace dtask::worker {

using namespace protocol;

WorkerState::WorkerState(WorkerConfig config, ExecutorPort& executor)
    : config_(std::move(config)),
      exec_(executor),
      pushed_(config_.fast_paths.push_results),
      held_(config_.fast_paths.hold_task_done),
      early_(config_.fast_paths.early_start),
      quick_(config_.fast_paths.run_on_loop) {}

void WorkerState::started(std::uint64_t now) { started_ms_ = last_heard_ = last_beat_ = now; }

template <class Pred>
void WorkerState::fail_requests(Pred failed, WorkerOutbox& out) {
  std::vector<Request> gone;
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (failed(it->second)) {
      gone.push_back(std::move(it->second));
      it = requests_.erase(it);
    } else {
      ++it;
    }
  }
  // After the scan, so holder_failed never sees requests_ mid-iteration.
  for (const Request& r : gone) {
    for (TaskId d : r.deps) holder_failed(d, r.peer, out);
  }
}

// ---- input ----

void WorkerState::handle(SchedulerToWorker msg, std::uint64_t now, WorkerOutbox& out) {
  last_heard_ = now;
  now_ = now;
  std::visit(
      [&](auto& m) {
        // A client asked the scheduler to retire this worker (scale-down): the same drain as SIGTERM.
        if constexpr (std::is_same_v<std::decay_t<decltype(m)>, PleaseRetire>) {
          if (config_.log && !retiring_) config_.log->info("asked to retire ({})", m.reason);
          retire(now, out);
        } else {
          on(m, out);
        }
      },
      msg);
}

void WorkerState::on(WorkerWelcome& m, WorkerOutbox& out) {
  welcomed_ = true;
  me_ = m.worker;
  heartbeat_ms_ = m.heartbeat_ms;
  if (config_.log) config_.log->info("worker '{}' registered with the scheduler (id {})", config_.name, m.worker.value);
  for (auto& p : m.peers) peers_[p.id.value] = p.address;
  if (retiring_) out.to_scheduler.push_back(RetireWorker{{}, retire_for_lifetime_});  // asked before it got here
}

void WorkerState::on(Rejected& m, WorkerOutbox&) {
  stop_ = Stop{1, "the scheduler refused this worker: " + m.reason};
}

void WorkerState::on(PeersChanged& m, WorkerOutbox& out) {
  for (auto& p : m.joined) peers_[p.id.value] = p.address;
  for (auto id : m.left) {
    if (peers_.erase(id.value)) out.peers_left.push_back(id);
    // A peer that left answers nothing: its requests fail now, not at the fetch timeout (which
    // held a recovery after a worker's death up by fetch_timeout_ms).
    fail_requests([&](const Request& r) { return r.peer == id; }, out);
  }
}

void WorkerState::on(ComputeTask& m, WorkerOutbox& out) {
  const std::uint64_t id = m.task.value;
  if (auto it = pending_.find(id); it != pending_.end()) {
    // Released while it ran and given to us again (an input was lost and recomputed, see
    // SchedulerState::remove_worker): the run going on serves.
    it->second.released = false;
    return;
  }
  if (retiring_) {
    give_back(m.task, out);  // sent before the scheduler heard we retire
    return;
  }
  if (m.early_nonce != 0 && adopt_early(m, out)) return;
  Pending p;
  p.msg = std::move(m);
  for (const auto& dep : p.msg.deps) {
    for (std::size_t i = 0; i < dep.holders.size() && i < dep.addresses.size(); ++i) {
      auto& address = peers_[dep.holders[i].value];
      if (address.empty()) address = dep.addresses[i];
    }
    // Here, in memory or spilled: a spilled one is read back by submit(), once the inputs that
    // come from peers are here too.
    if (store_.contains(dep.task.value)) continue;
    ++p.missing;
    auto& f = fetches_[dep.task.value];
    const bool in_flight = !f.waiting.empty();
    f.waiting.push_back(p.msg.task);
    if (!in_flight) f.holders.clear();
    // Holders named later (a recomputed input, a new replica) join the list of a fetch under way.
    for (auto h : dep.holders) {
      if (h != me_ && std::find(f.holders.begin(), f.holders.end(), h) == f.holders.end()) f.holders.push_back(h);
    }
  }
  // Inputs here are held while the others come, so they are not spilled meanwhile.
  if (p.missing != 0 && config_.memory_limit != 0) pin_inputs_in_memory(p);
  auto& slot = pending_[id] = std::move(p);
  if (slot.missing == 0) submit(slot, out);
}

void WorkerState::on(ReleaseTasks& m, WorkerOutbox& out) {
  // Released after the client's receipt: the scheduler needs no TaskDone for these any more.
  held_.release(m.tasks);
  for (TaskId id : m.tasks) {
    drop_result(id.value, out);
    if (auto it = pending_.find(id.value); it != pending_.end()) {
      // Not started: gone. Running: its result is dropped when it completes.
      if (!it->second.submitted || exec_.withdraw(id)) pending_.erase(it);
      else it->second.released = true;
    }
  }
  if (freed_since_trim_ >= kTrimThreshold) {
    out.trim_memory = true;
    freed_since_trim_ = 0;
  }
}

void WorkerState::on(StealRequest& m, WorkerOutbox& out) {
  auto it = pending_.find(m.task.value);
  bool stolen = false;
  if (it != pending_.end() && (!it->second.submitted || exec_.withdraw(m.task))) {
    pending_.erase(it);
    stolen = true;
  }
  out.to_scheduler.push_back(StealReply{m.task, stolen});
}

void WorkerState::on(Heartbeat&, WorkerOutbox&) {}

void WorkerState::on(WorkerShutdown& m, WorkerOutbox&) { stop_ = Stop{m.code, {}}; }

void WorkerState::handle_request(PeerRequest msg, const std::string& from, WorkerOutbox& out) {
  if (auto* start = std::get_if<StartTask>(&msg)) {
    if (!early_.enabled() || retiring_) {
      out.reply(from, NotStarted{start->key});
      return;
    }
    start_requests_.emplace_back(std::move(*start), from);  // decided at start_ready
    return;
  }
  auto& get = std::get<GetData>(msg);
  DataReply reply;
  reply.request_id = get.request_id;
  std::size_t missing = 0;
  const std::uint64_t gid = next_get_;
  for (TaskId id : get.tasks) {
    DataItem item;
    item.task = id;
    if (const auto* data = store_.get(id.value)) {
      item.found = true;
      item.data = **data;  // copies the small header; bulk frames are shared
    } else if (store_.contains(id.value)) {
      // Spilled: the reply waits until it is read back (on_spill), the others' data held meanwhile.
      item.found = true;
      ++missing;
      restores_[id.value].gets.push_back(gid);
      restore(id.value, out);
    }
    reply.items.push_back(std::move(item));
  }
  if (missing == 0) {
    out.reply(from, std::move(reply));
    return;
  }
  ++next_get_;
  gets_[gid] = DeferredGet{from, std::move(reply), missing};
}

void WorkerState::handle_reply(PeerReply msg, std::uint64_t now, WorkerOutbox& out) {
  if (auto* reply = std::get_if<DataReply>(&msg)) on_data(*reply, now, out);
}

void WorkerState::push_refused(PushRef push, WorkerOutbox& out) {
  if (push.kind == PushRef::Kind::task) {
    // No client has it after all: the scheduler must hear from us.
    if (auto done = held_.refused(TaskId{push.id})) out.to_scheduler.push_back(std::move(*done));
  } else if (push.kind == PushRef::Kind::early) {
    early_.push_refused(push.id);
  }
}

// ---- jobs ----

namespace {
// Argument `i` of `job` is this value, kept alive by the job for its run.
void hold_value(Job& job, std::size_t i, Payload&& value) {
  auto held = std::make_shared<const Payload>(std::move(value));
  job.args[i].value = held.get();
  job.keep.push_back(std::move(held));
}
}  // namespace

void WorkerState::pin_inputs_in_memory(Pending& p) {
  for (const auto& a : p.msg.args) {
    for (TaskId ref : a.refs) {
      if (const auto* e = store_.find(ref.value); e && e->data) p.pinned.push_back(e->data);
    }
  }
}

void WorkerState::submit(Pending& p, WorkerOutbox& out) {
  if (paused_) {
    defer(p);
    return;
  }
  const dtask_task_v1* entry = config_.find_task ? config_.find_task(p.msg.func) : nullptr;
  if (!entry) {
    out.to_scheduler.push_back(TaskFailed{p.msg.task, "unknown task name '" + p.msg.func + "': " + config_.tasks_provided});
    pending_.erase(p.msg.task.value);
    return;
  }
  // The plugin is never called with a missing argument: a dependency without exactly one task
  // (or an argument of an unknown kind) is the sender's error, reported as the task's failure.
  for (std::size_t i = 0; i < p.msg.args.size(); ++i) {
    const auto& a = p.msg.args[i];
    const char* why = nullptr;
    if (a.kind == TaskArg::dep && a.refs.size() != 1) why = "a dependency argument must name exactly one task";
    else if (a.kind != TaskArg::value && a.kind != TaskArg::dep && a.kind != TaskArg::dep_list) why = "unknown argument kind";
    if (why) {
      out.to_scheduler.push_back(TaskFailed{p.msg.task, "argument " + std::to_string(i) + " of task '" + p.msg.key +
                                                            "' is malformed: " + why});
      pending_.erase(p.msg.task.value);
      return;
    }
  }
  // An input spilled after all (its write was out when the task came, or it was fetched before
  // the task came): read back first, and the job is made when it is here.
  for (const auto& a : p.msg.args) {
    if (a.kind == TaskArg::value) continue;
    for (TaskId ref : a.refs) {
      const auto* e = store_.find(ref.value);
      if (e && !e->data) {
        ++p.missing;
        restores_[ref.value].tasks.push_back(p.msg.task);
        restore(ref.value, out);
      }
    }
  }
  if (p.missing != 0) {
    pin_inputs_in_memory(p);
    return;
  }
  Job job;
  job.id = p.msg.task;
  job.priority = p.msg.priority;
  job.entry = entry;
  job.resources = p.msg.resources;
  job.args.resize(p.msg.args.size());
  // Keep every input alive for the run: the store may drop its copy meanwhile.
  for (std::size_t i = 0; i < p.msg.args.size(); ++i) {
    auto& a = p.msg.args[i];
    auto& ca = job.args[i];
    if (a.kind == TaskArg::value) {
      hold_value(job, i, Payload(a.data));  // a copy (frames shared): a withdrawn job is made again
      continue;
    }
    ca.is_list = a.kind == TaskArg::dep_list;
    for (TaskId ref : a.refs) {
      const auto* data = store_.get(ref.value);
      if (!data) {
        out.to_scheduler.push_back(FetchFailed{p.msg.task, ref});
        pending_.erase(p.msg.task.value);
        return;
      }
      if (ca.is_list) ca.list.push_back(data->get());
      else ca.value = data->get();
      job.keep.push_back(*data);
    }
  }
  p.pinned.clear();  // the job holds its inputs now
  ready_jobs_.push_back(std::move(job));
}

bool WorkerState::start_ready(WorkerOutbox& out) {
  if (!start_requests_.empty()) {
    auto requests = std::move(start_requests_);
    start_requests_.clear();
    for (auto& [m, from] : requests) {
      if (paused_) {
        out.reply(from, NotStarted{m.key});  // the scheduler places it (elsewhere: this one is paused)
        continue;
      }
      if (!start_early(m, from, out)) return false;  // the rest are dropped: their ComputeTasks run them
    }
  }
  // A job whose task was released or stolen in this same pass (its Pending is gone, having not
  // been submitted yet) is dropped here; a Pending is submitted once.
  std::erase_if(ready_jobs_, [&](const Job& job) {
    auto it = pending_.find(job.id.value);
    return it == pending_.end() || it->second.submitted;
  });
  if (ready_jobs_.empty()) return true;
  // Paused (memory) in this pass: the jobs are dropped (they held their inputs), their tasks wait.
  if (paused_) {
    for (const Job& job : ready_jobs_) defer(pending_.at(job.id.value));
    ready_jobs_.clear();
    return true;
  }
  for (const Job& job : ready_jobs_) pending_.at(job.id.value).submitted = true;
  // Exactly one job, nothing else here, a function that has always been quick: run it on this
  // thread (quick_runs.hpp).
  if (ready_jobs_.size() == 1 && ready_jobs_.front().resources.empty() && quick_.may_run_here(ready_jobs_.front().entry) &&
      out.to_executor.empty() && exec_.can_run_here() && exec_.idle()) {
    Job job = std::move(ready_jobs_.front());
    ready_jobs_.clear();
    auto c = run_on_loop(std::move(job));
    if (!c) return false;
    on_completion(std::move(*c), out);
    return true;
  }
  for (auto& job : ready_jobs_) out.to_executor.push_back(std::move(job));
  ready_jobs_.clear();
  return true;
}

void WorkerState::on_completion(Completion c, WorkerOutbox& out) {
  quick_.note_run(c.entry, c.run_ns);
  auto it = pending_.find(c.id.value);
  if (it == pending_.end()) return;  // stolen while it ran, or an early start's lost run
  if (it->second.released) {
    pending_.erase(it);
    return;
  }
  const ComputeTask& msg = it->second.msg;
  if (c.ok) {
    const auto nbytes = c.result.nbytes();
    TaskDone done{c.id, nbytes, false, {}};
    if (config_.memory_limit != 0 && nbytes > config_.memory_limit && nbytes > kInlineResultBytes) {
      // Fits nowhere in memory: on disk at once, reported when it is there (or failed if it cannot be).
      store_.put(c.id.value, std::make_shared<const Payload>(std::move(c.result)));
      store_.start_write(c.id.value);
      const auto* e = store_.find(c.id.value);
      out.spill.push_back(WorkerOutbox::Spill{WorkerOutbox::Spill::Kind::write, c.id.value, e->tag, e->data});
      awaiting_disk_[c.id.value] = std::move(done);
      pending_.erase(it);
      return;
    }
    std::uint32_t pushes = 0;
    if (nbytes <= kInlineResultBytes) {
      done.has_data = true;
      done.data = c.result;
      pushes = pushed_.push(c.id, msg.key, c.result, msg.push_to, me_, out);
    }
    store_result(std::move(done), std::make_shared<const Payload>(std::move(c.result)), pushes, msg.dependents_waiting,
                 out);
  } else {
    out.to_scheduler.push_back(TaskFailed{c.id, std::move(c.error)});
  }
  pending_.erase(it);
}

void WorkerState::store_result(TaskDone done, std::shared_ptr<const Payload> result, std::uint32_t pushes,
                               bool dependents_waiting, WorkerOutbox& out) {
  const std::uint64_t id = done.task.value;
  if (store_.contains(id)) drop_result(id, out);
  store_.put(id, std::move(result));
  after_put(id, out);
  if (pushes > 0 && !dependents_waiting && held_.enabled() && !retiring_) {
    held_.hold(std::move(done), pushes);
  } else {
    out.to_scheduler.push_back(std::move(done));
  }
}

// ---- time ----

void WorkerState::tick(std::uint64_t now, WorkerOutbox& out) {
  now_ = now;
  if (config_.memory_limit != 0) check_memory(now, out);
  if (!fetches_.empty()) start_fetches(now, out);
  if (!requests_.empty()) expire_requests(now, out);
  // Twice per heartbeat_ms: a live worker whose connection was seen to close speaks again within
  // the scheduler's grace (SchedulerState::connection_closed).
  if (now >= last_beat_ + heartbeat_ms_ / 2) {
    // The dashboard's news (telemetry.hpp) rides with the heartbeat; before the welcome it waits.
    if (config_.telemetry && welcomed_) {
      if (auto t = config_.telemetry->drain()) out.to_scheduler.push_back(std::move(*t));
    }
    out.to_scheduler.push_back(Heartbeat{now});
    last_beat_ = now;
  }
  if (stop_) return;
  // --lifetime: a worker that has lived its time leaves gracefully (its results handed over),
  // before the batch system's walltime kills it with them (Dask's --lifetime).
  if (config_.lifetime_ms != 0 && !retiring_ && now >= started_ms_ + config_.lifetime_ms) {
    if (config_.log) config_.log->info("lifetime of {} ms reached: retiring", config_.lifetime_ms);
    retire_for_lifetime_ = true;
    retire(now, out);
  }
  if (!welcomed_ && retiring_ && now > retire_deadline_) {
    // Asked to leave (SIGTERM, scancel) before the scheduler ever answered: nothing to hand over.
    if (config_.log) config_.log->info("retiring before the scheduler answered: leaving");
    stop_ = Stop{0, {}};
  } else if (!welcomed_ && now > started_ms_ + config_.connect_timeout_ms) {
    stop_ = Stop{1, "no answer from the scheduler within " + std::to_string(config_.connect_timeout_ms / 1000) + " s"};
  } else if (welcomed_ && link_down_since_ != 0 && now > link_down_since_ + config_.reconnect_grace_ms) {
    // Connection loss is the quick sign (a dead scheduler's kernel closes its sockets); the
    // silence below is the fallback for a scheduler that hangs with its connections open.
    stop_ = Stop{1,
                 "lost the scheduler: its connection closed and was not made again within " +
                     std::to_string(config_.reconnect_grace_ms) + " ms",
                 true};
  } else if (welcomed_ && now > last_heard_ + config_.scheduler_timeout_ms) {
    stop_ = Stop{1, "lost the scheduler (silent for " + std::to_string(config_.scheduler_timeout_ms / 1000) + " s)", true};
  } else if (retiring_ && now > retire_deadline_) {
    if (config_.log) {
      config_.log->warn("retiring: the hand-over did not finish within {} s; leaving anyway (results held only here "
                        "are recomputed elsewhere)", config_.drain_timeout_ms / 1000);
    }
    stop_ = Stop{0, {}};
  }
}

void WorkerState::scheduler_link(bool up, std::uint64_t now) {
  if (up) link_down_since_ = 0;
  else if (link_down_since_ == 0) link_down_since_ = std::max<std::uint64_t>(now, 1);
}

void WorkerState::settle(std::uint64_t now, WorkerOutbox& out) {
  auto due = held_.take_due(now, !out.to_scheduler.empty() || !replicas_.empty());
  if (!due.empty()) {
    out.to_scheduler.insert(out.to_scheduler.begin(), std::make_move_iterator(due.begin()),
                            std::make_move_iterator(due.end()));
  }
  if (!replicas_.empty()) {
    out.to_scheduler.push_back(ReplicasAdded{std::move(replicas_)});
    replicas_.clear();
  }
}

std::uint64_t WorkerState::poll_timeout_ms() const {
  if (!ready_jobs_.empty()) return 0;  // made ready outside a message's pass (a resume): start them now
  return held_.empty() ? heartbeat_ms_ / 2 + 1 : kPushedDoneDelayMs;
}

// ---- fetching inputs from peers ----

void WorkerState::start_fetches(std::uint64_t now, WorkerOutbox& out) {
  std::unordered_map<std::uint32_t, std::vector<TaskId>> by_peer;
  std::vector<std::uint64_t> hopeless;
  // With a memory limit, fetching is paced by memory (one input per request, fetch_budget()
  // requests out at once): one request for every input of a reduction would bring them all in
  // at once, here and at the holder that reads them back from its disk.
  const std::size_t budget = fetch_budget();
  std::size_t started = 0;
  for (auto& [dep, f] : fetches_) {
    if (f.in_flight) continue;
    while (!f.holders.empty() && !peers_.count(f.holders.front().value)) f.holders.erase(f.holders.begin());
    if (f.holders.empty()) {
      hopeless.push_back(dep);
      continue;
    }
    if (requests_.size() + started >= budget) continue;
    f.in_flight = true;
    by_peer[f.holders.front().value].push_back(TaskId{dep});
    if (budget != SIZE_MAX) ++started;
  }
  for (auto dep : hopeless) fetch_failed_everywhere(dep, out);
  for (auto& [peer, deps] : by_peer) {
    if (budget != SIZE_MAX) {
      for (TaskId d : deps) {
        const std::uint64_t rid = next_request_++;
        out.to_peers.push_back(WorkerOutbox::PeerRequest{WorkerId{peer}, peers_[peer], GetData{rid, {d}}});
        requests_[rid] = Request{WorkerId{peer}, {d}, now};
      }
      continue;
    }
    const std::uint64_t rid = next_request_++;
    out.to_peers.push_back(WorkerOutbox::PeerRequest{WorkerId{peer}, peers_[peer], GetData{rid, deps}});
    requests_[rid] = Request{WorkerId{peer}, std::move(deps), now};
  }
}

void WorkerState::fetch_failed_everywhere(std::uint64_t dep, WorkerOutbox& out) {
  auto it = fetches_.find(dep);
  if (it == fetches_.end()) return;
  for (TaskId t : it->second.waiting) {
    if (pending_.erase(t.value)) out.to_scheduler.push_back(FetchFailed{t, TaskId{dep}});
  }
  fetches_.erase(it);
}

void WorkerState::holder_failed(TaskId dep, WorkerId peer, WorkerOutbox& out) {
  auto fit = fetches_.find(dep.value);
  if (fit == fetches_.end()) return;
  fit->second.in_flight = false;  // the next pass asks the next holder
  std::erase(fit->second.holders, peer);
  if (fit->second.holders.empty()) fetch_failed_everywhere(dep.value, out);
}

void WorkerState::on_data(DataReply& reply, std::uint64_t now, WorkerOutbox& out) {
  auto rit = requests_.find(reply.request_id);
  if (rit == requests_.end()) return;
  const WorkerId peer = rit->second.peer;
  if (config_.telemetry) {
    // The time in ms of the loop's passes (the core has no finer clock): summed over many
    // fetches the truncation evens out.
    std::uint64_t count = 0, bytes = 0;
    for (const auto& item : reply.items) {
      if (!item.found) continue;
      ++count;
      bytes += item.data.nbytes();
    }
    const std::uint64_t sent = rit->second.sent_ms;
    auto pit = peers_.find(peer.value);
    config_.telemetry->record_fetch(pit != peers_.end() ? pit->second : "worker " + peer.str(), count, bytes,
                                    (now > sent ? now - sent : 0) * 1000);
  }
  requests_.erase(rit);
  for (auto& item : reply.items) {
    auto fit = fetches_.find(item.task.value);
    if (fit == fetches_.end()) continue;
    if (!item.found) {
      holder_failed(item.task, peer, out);
      continue;
    }
    if (store_.contains(item.task.value)) drop_result(item.task.value, out);
    auto data = std::make_shared<const Payload>(std::move(item.data));
    store_.put(item.task.value, data);
    replicas_.push_back(item.task);
    auto waiting = std::move(fit->second.waiting);
    fetches_.erase(fit);
    for (TaskId t : waiting) {
      auto pit = pending_.find(t.value);
      if (pit == pending_.end()) continue;
      if (pit->second.missing > 0 && --pit->second.missing == 0) submit(pit->second, out);
      else if (config_.memory_limit != 0) pit->second.pinned.push_back(data);
    }
    after_put(item.task.value, out);
  }
}

void WorkerState::expire_requests(std::uint64_t now, WorkerOutbox& out) {
  fail_requests(
      [&](const Request& r) {
        const bool expired = now > r.sent_ms + config_.fetch_timeout_ms;
        if (expired && config_.log) {
          config_.log->warn("peer {} did not answer a data request in {} ms", r.peer.value, config_.fetch_timeout_ms);
        }
        return expired;
      },
      out);
}


}  // namespace dtask::worker

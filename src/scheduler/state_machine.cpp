// The task state machine: one table of legal (state, event) rules; every change goes through transition().
#include <array>

#include "scheduler/scheduler_state.hpp"

namespace dtask::scheduler {

const char* to_string(TaskState s) {
  switch (s) {
    case TaskState::released: return "released";
    case TaskState::waiting: return "waiting";
    case TaskState::queued: return "queued";
    case TaskState::processing: return "processing";
    case TaskState::memory: return "memory";
    case TaskState::erred: return "erred";
    case TaskState::forgotten: return "forgotten";
  }
  return "?";
}

const char* to_string(TaskEventKind e) {
  switch (e) {
    case TaskEventKind::wait_for_inputs: return "wait_for_inputs";
    case TaskEventKind::queue: return "queue";
    case TaskEventKind::assign: return "assign";
    case TaskEventKind::finish: return "finish";
    case TaskEventKind::fail: return "fail";
    case TaskEventKind::reschedule: return "reschedule";
    case TaskEventKind::drop_data: return "drop_data";
    case TaskEventKind::forget: return "forget";
  }
  return "?";
}

namespace {
constexpr TaskState target(TaskEventKind e) {
  switch (e) {
    case TaskEventKind::wait_for_inputs: return TaskState::waiting;
    case TaskEventKind::queue: return TaskState::queued;
    case TaskEventKind::assign: return TaskState::processing;
    case TaskEventKind::finish: return TaskState::memory;
    case TaskEventKind::fail: return TaskState::erred;
    case TaskEventKind::reschedule: return TaskState::released;
    case TaskEventKind::drop_data: return TaskState::released;
    case TaskEventKind::forget: return TaskState::forgotten;
  }
  return TaskState::forgotten;
}
}  // namespace

TaskState target_of(TaskEventKind e) { return target(e); }

struct StateMachine {
  using Action = void (*)(SchedulerState&, Task&, TaskState from, const TaskEvent&, Outbox&);
  struct Rule {
    TaskState from;
    TaskEventKind event;
    TaskState to;
    Action enter;
  };

  static void to_waiting(SchedulerState& s, Task& t, TaskState, const TaskEvent& e, Outbox& o) { s.enter_waiting(t, e, o); }
  static void to_queued(SchedulerState& s, Task& t, TaskState, const TaskEvent& e, Outbox& o) { s.enter_queued(t, e, o); }
  static void to_processing(SchedulerState& s, Task& t, TaskState, const TaskEvent& e, Outbox& o) {
    s.enter_processing(t, e, o);
  }
  static void to_memory(SchedulerState& s, Task& t, TaskState, const TaskEvent& e, Outbox& o) { s.enter_memory(t, e, o); }
  static void to_erred(SchedulerState& s, Task& t, TaskState, const TaskEvent& e, Outbox& o) { s.enter_erred(t, e, o); }
  static void to_released(SchedulerState& s, Task& t, TaskState, const TaskEvent& e, Outbox& o) {
    s.enter_released(t, e, o);
  }
  static void to_forgotten(SchedulerState& s, Task& t, TaskState f, const TaskEvent&, Outbox& o) {
    s.enter_forgotten(t, f, o);
  }

  using S = TaskState;
  using E = TaskEventKind;
  // THE table: which event may happen in which state, and where it leads. Anything not listed is
  // illegal: refused, counted and logged (SchedulerState::refuse).
  static constexpr Rule kRules[] = {
      {S::released, E::wait_for_inputs, S::waiting, to_waiting},  // some inputs are not in memory yet
      {S::released, E::queue, S::queued, to_queued},              // ready, waiting for a worker slot
      {S::released, E::assign, S::processing, to_processing},     // ready and placed at once
      {S::released, E::fail, S::erred, to_erred},                 // an input failed, or bad input
      {S::released, E::forget, S::forgotten, to_forgotten},       // nobody wants it any more
      {S::waiting, E::queue, S::queued, to_queued},               // its inputs are all in memory
      {S::waiting, E::assign, S::processing, to_processing},
      {S::waiting, E::reschedule, S::released, to_released},
      {S::waiting, E::fail, S::erred, to_erred},                  // an input failed or it was cancelled
      {S::waiting, E::forget, S::forgotten, to_forgotten},
      {S::queued, E::assign, S::processing, to_processing},       // a worker slot, or a worker that may run it
      {S::queued, E::reschedule, S::released, to_released},       // an input was lost
      {S::queued, E::fail, S::erred, to_erred},                   // cancelled, or no worker can ever run it
      {S::queued, E::forget, S::forgotten, to_forgotten},
      {S::processing, E::finish, S::memory, to_memory},           // the worker (or the client it pushed to) said so
      {S::processing, E::fail, S::erred, to_erred},               // it threw (no retries left) or was cancelled
      {S::processing, E::reschedule, S::released, to_released},   // worker died, retry, stolen, lost input
      {S::processing, E::forget, S::forgotten, to_forgotten},
      {S::memory, E::drop_data, S::released, to_released},        // data no longer needed, or its last copy lost
      {S::memory, E::forget, S::forgotten, to_forgotten},
      {S::erred, E::reschedule, S::released, to_released},
      {S::erred, E::forget, S::forgotten, to_forgotten},
  };

  static constexpr bool consistent() {
    for (const auto& r : kRules) {
      if (r.to != target(r.event)) return false;
    }
    return true;
  }
  using Table = std::array<std::array<const Rule*, kNumTaskEvents>, kNumTaskStates>;
  static constexpr Table build() {
    Table table{};
    for (const auto& r : kRules) table[static_cast<std::size_t>(r.from)][static_cast<std::size_t>(r.event)] = &r;
    return table;
  }
};

static_assert(StateMachine::consistent(), "a rule's target state must be its event's target");

namespace {
// refused_logged_ has one bit per (from, to) pair (49) and this one for an event on no task.
constexpr std::uint64_t kNoSlotLogged = std::uint64_t{1} << 63;
static_assert(kNumTaskStates * kNumTaskStates < 63);
// Built once at compile time: [from][event] -> rule, nullptr where illegal.
constexpr StateMachine::Table kTable = StateMachine::build();
}  // namespace

bool is_legal(TaskState from, TaskEventKind e) {
  return kTable[static_cast<std::size_t>(from)][static_cast<std::size_t>(e)] != nullptr;
}

bool is_legal(TaskState from, TaskState to) {
  for (const auto& r : StateMachine::kRules) {
    if (r.from == from && r.to == to) return true;
  }
  return false;
}

TransitionResult SchedulerState::transition(std::uint32_t slot, const TaskEvent& ev, Outbox& out) {
  if (slot >= tasks_.slots()) {
    ++refused_transitions_;
    std::string what = "no task in slot " + std::to_string(slot);
    if ((refused_logged_ & kNoSlotLogged) == 0) {
      refused_logged_ |= kNoSlotLogged;
      log_->warn("{}: {} refused (further ones are only counted)", what, to_string(ev.kind));
    }
    return {false, std::move(what)};
  }
  Task& t = tasks_[slot];
  TaskState from = t.state;
  const StateMachine::Rule* rule = kTable[static_cast<std::size_t>(from)][static_cast<std::size_t>(ev.kind)];
  if (rule == nullptr) return refuse(t, from, ev.kind);
  leave(t, from, ev, out);
  --counts_[static_cast<std::size_t>(from)];
  t.state = rule->to;
  if (rule->to != TaskState::forgotten) ++counts_[static_cast<std::size_t>(rule->to)];
  // The dashboard's progress per task name (sized at submission, so t.func is in range).
  auto& fc = func_counts_[t.func];
  --fc.now[static_cast<std::size_t>(from)];
  if (rule->to != TaskState::forgotten) ++fc.now[static_cast<std::size_t>(rule->to)];
  if (rule->to == TaskState::memory) {
    ++fc.done;
  } else if (rule->to == TaskState::erred && !ev.cancelled) {
    ++fc.erred;
  }
  rule->enter(*this, t, from, ev, out);
  return {};
}

TransitionResult SchedulerState::refuse(const Task& t, TaskState from, TaskEventKind kind) {
  ++refused_transitions_;
  TaskState to = target_of(kind);
  std::string what = std::string("illegal transition ") + to_string(from) + " -> " + to_string(to) + " (" +
                     to_string(kind) + ") for key " + std::string(key_of(t));
  // Once per pair: a refusal repeated in a hot loop must not flood the log; the counter
  // (info()["counters"]["refused_transitions"]) still sees every one.
  std::uint64_t bit = std::uint64_t{1} << (static_cast<unsigned>(from) * kNumTaskStates + static_cast<unsigned>(to));
  if ((refused_logged_ & bit) == 0) {
    refused_logged_ |= bit;
    log_->warn("{} refused (a bug in the scheduler's bookkeeping; further {} -> {} refusals are only counted)",
               what, to_string(from), to_string(to));
  }
  return {false, std::move(what)};
}

// Bookkeeping common to leaving a state, so each enter_* action only does its own part.
void SchedulerState::leave(Task& t, TaskState from, const TaskEvent& ev, Outbox& out) {
  const std::uint32_t slot = protocol::slot_of(t.id);
  const TaskState to = target_of(ev.kind);
  auto finished = [](TaskState s) { return s == TaskState::memory || s == TaskState::erred; };
  if (from == TaskState::processing) {
    if (t.processing_on != kNoWorker) {
      auto& w = workers_[t.processing_on.value];
      w.processing.erase(slot);
      note_room(w);
      // Cancelled or forgotten while running: the worker drops it. (Dead workers hear nothing.)
      if (w.alive && (to == TaskState::forgotten || (to == TaskState::erred && ev.cancelled))) {
        out.worker(w.id, protocol::ReleaseTasks{{t.id}});
      }
    }
    t.processing_on = kNoWorker;
    if (t.steal_pending && t.steal_thief != kNoWorker) {
      auto& thief = workers_[t.steal_thief.value];
      if (thief.stealing_in > 0) --thief.stealing_in;
    }
    t.steal_pending = false;
    t.steal_thief = kNoWorker;
  }
  if (from == TaskState::memory) {
    for (auto d : t.dependents) ++tasks_[d].waiting_on;
    for (WorkerId h : t.who_has) {
      auto& w = workers_[h.value];
      w.has_what.erase(slot);
      w.nbytes -= std::min(w.nbytes, t.nbytes);
      if (w.alive) out.worker(h, protocol::ReleaseTasks{{t.id}});
    }
    t.who_has.clear();
  }
  if (finished(from) && !finished(to)) {
    for (auto d : deps_of(t)) ++tasks_[d].unfinished_dependents;
  }
  if (from == TaskState::queued) {
    for (std::size_t i = 0; i < unrunnable_.size(); ++i) {
      if (unrunnable_[i].slot == slot) {
        unrunnable_[i] = unrunnable_.back();
        unrunnable_.pop_back();
        break;
      }
    }
  }
  if (from == TaskState::erred && to != TaskState::forgotten) {
    tasks_.clear_failure(slot);
    t.cancelled = false;
  }
}

void SchedulerState::enter_waiting(Task&, const TaskEvent&, Outbox&) {}

void SchedulerState::enter_queued(Task& t, const TaskEvent&, Outbox&) {
  if (is_root(t)) {
    root_queue_.push(QueueEntry{t.priority, protocol::slot_of(t.id), t.seq});
  } else {
    unrunnable_.push_back(Unrunnable{protocol::slot_of(t.id), now_ms_});
  }
}

void SchedulerState::enter_processing(Task& t, const TaskEvent& ev, Outbox& out) {
  t.processing_on = ev.worker;
  auto& w = workers_[ev.worker.value];
  w.processing.insert(protocol::slot_of(t.id));
  protocol::ComputeTask m;
  m.task = t.id;
  m.key = key_of(t);
  m.func = tasks_.func_of(t);
  m.args = args_of(t);
  m.resources = resources_of(t);
  m.priority = t.priority;
  if (t.push_result) add_push_targets(t, m);
  m.early_nonce = ev.early_nonce;
  m.deps.reserve(t.n_deps);
  for (auto d : deps_of(t)) {
    protocol::DepLocation loc{tasks_[d].id, tasks_[d].who_has.to_vector(), {}};
    loc.addresses.reserve(loc.holders.size());
    for (auto h : loc.holders) loc.addresses.push_back(workers_[h.value].info.address);
    m.deps.push_back(std::move(loc));
  }
  out.worker(w.id, std::move(m));
}

void SchedulerState::enter_memory(Task& t, const TaskEvent& ev, Outbox& out) {
  const std::uint32_t slot = protocol::slot_of(t.id);
  t.nbytes = ev.nbytes;
  t.who_has.assign_one(ev.worker);
  auto& holder = workers_[ev.worker.value];
  holder.has_what.insert(slot);
  holder.nbytes += ev.nbytes;
  note_result(holder, ev.nbytes);
  note_func_result(t.func, ev.nbytes);  // what the next task of this function is expected to weigh
  for (auto d : deps_of(t)) --tasks_[d].unfinished_dependents;
  std::vector<std::uint32_t> ready;
  for (auto d : t.dependents) {
    Task& dt = tasks_[d];
    if (dt.waiting_on > 0) --dt.waiting_on;
    if (dt.state == TaskState::waiting && dt.waiting_on == 0) ready.push_back(d);
  }
  notify_done(t, ev, out);
  for (auto d : ready) {
    if (tasks_[d].state == TaskState::waiting && tasks_[d].waiting_on == 0) schedule_ready(d, out);
  }
  // Inputs nobody needs any more are dropped from the workers.
  auto deps = deps_of(tasks_[slot]);
  for (auto d : std::vector<std::uint32_t>(deps.begin(), deps.end())) maybe_release_data(d, out);
  maybe_release_data(slot, out);
}

void SchedulerState::enter_erred(Task& t, const TaskEvent& ev, Outbox& out) {
  // Every erred task has a failure: its dependents and later submitters of its key are told it.
  auto failure = ev.failure ? ev.failure : std::make_shared<const Failure>(Failure{"?", "failed (no reason given)"});
  tasks_.set_failure(protocol::slot_of(t.id), failure);
  t.cancelled = ev.cancelled;
  auto deps = deps_of(t);
  for (auto d : deps) --tasks_[d].unfinished_dependents;
  const Failure* f = failure.get();
  for (ClientId c : t.wanted_by) {
    if (t.cancelled) {
      out.client(c, protocol::KeyCancelled{std::string(key_of(t)), f->message});
    } else {
      out.client(c, protocol::KeyErred{std::string(key_of(t)), f->func, f->message});
    }
  }
  for (auto d : std::vector<std::uint32_t>(deps.begin(), deps.end())) maybe_release_data(d, out);
}

void SchedulerState::enter_released(Task&, const TaskEvent&, Outbox&) {}

void SchedulerState::enter_forgotten(Task& t, TaskState from, Outbox&) {
  const std::uint32_t slot = protocol::slot_of(t.id);
  bool was_finished = from == TaskState::memory || from == TaskState::erred;
  for (auto d : deps_of(t)) {
    Task& dt = tasks_[d];
    for (std::size_t i = 0; i < dt.dependents.size(); ++i) {
      if (dt.dependents[i] == slot) {
        dt.dependents[i] = dt.dependents.back();
        dt.dependents.pop_back();
        break;
      }
    }
    if (!was_finished && dt.unfinished_dependents > 0) --dt.unfinished_dependents;
    forget_queue_.push_back(d);
  }
  tasks_.free(slot);
}

}  // namespace dtask::scheduler

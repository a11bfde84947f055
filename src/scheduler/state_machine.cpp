// The task state machine: one table of legal transitions; every change goes through transition().
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

struct StateMachine {
  using Action = void (*)(SchedulerState&, Task&, TaskState from, Outbox&);
  struct Rule {
    TaskState from, to;
    Action enter;
  };

  static void to_waiting(SchedulerState& s, Task& t, TaskState, Outbox& o) { s.enter_waiting(t, o); }
  static void to_queued(SchedulerState& s, Task& t, TaskState, Outbox& o) { s.enter_queued(t, o); }
  static void to_processing(SchedulerState& s, Task& t, TaskState, Outbox& o) { s.enter_processing(t, o); }
  static void to_memory(SchedulerState& s, Task& t, TaskState, Outbox& o) { s.enter_memory(t, o); }
  static void to_erred(SchedulerState& s, Task& t, TaskState, Outbox& o) { s.enter_erred(t, o); }
  static void to_released(SchedulerState& s, Task& t, TaskState f, Outbox& o) { s.enter_released(t, f, o); }
  static void to_forgotten(SchedulerState& s, Task& t, TaskState f, Outbox& o) { s.enter_forgotten(t, f, o); }

  using S = TaskState;
  // THE table. Anything not listed is illegal and refused.
  static constexpr Rule kRules[] = {
      {S::released, S::waiting, to_waiting},       // some inputs are not in memory yet
      {S::released, S::queued, to_queued},         // ready, waiting for a worker slot
      {S::released, S::processing, to_processing}, // ready and placed at once
      {S::released, S::erred, to_erred},           // an input failed, or bad input
      {S::released, S::forgotten, to_forgotten},   // nobody wants it any more
      {S::waiting, S::queued, to_queued},
      {S::waiting, S::processing, to_processing},
      {S::waiting, S::released, to_released},
      {S::waiting, S::erred, to_erred},
      {S::waiting, S::forgotten, to_forgotten},
      {S::queued, S::processing, to_processing},
      {S::queued, S::released, to_released},
      {S::queued, S::erred, to_erred},
      {S::queued, S::forgotten, to_forgotten},
      {S::processing, S::memory, to_memory},       // the worker finished it
      {S::processing, S::erred, to_erred},         // it threw (no retries left) or was cancelled
      {S::processing, S::released, to_released},  // worker died, retry, steal, lost input
      {S::processing, S::forgotten, to_forgotten},
      {S::memory, S::released, to_released},       // data dropped (no longer needed) or lost
      {S::memory, S::forgotten, to_forgotten},
      {S::erred, S::released, to_released},
      {S::erred, S::forgotten, to_forgotten},
  };

  static constexpr std::array<std::array<Action, kNumTaskStates>, kNumTaskStates> build() {
    std::array<std::array<Action, kNumTaskStates>, kNumTaskStates> table{};
    for (const auto& r : kRules) table[static_cast<std::size_t>(r.from)][static_cast<std::size_t>(r.to)] = r.enter;
    return table;
  }
};

// Built once at compile time: [from][to] -> entry action, nullptr where illegal.
constexpr auto kTable = StateMachine::build();

bool is_legal(TaskState from, TaskState to) {
  return kTable[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)] != nullptr;
}

TransitionResult SchedulerState::transition(std::uint32_t slot, TaskState to, Outbox& out) {
  if (slot >= tasks_.size()) return {false, "no task in slot " + std::to_string(slot)};
  Task& t = tasks_[slot];
  TaskState from = t.state;
  auto action = kTable[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
  if (action == nullptr) {
    return {false, std::string("illegal transition ") + to_string(from) + " -> " + to_string(to) + " for key " + std::string(key_of(t))};
  }
  leave(t, from, to, out);
  --counts_[static_cast<std::size_t>(from)];
  t.state = to;
  if (to != TaskState::forgotten) ++counts_[static_cast<std::size_t>(to)];
  action(*this, t, from, out);
  return {};
}

// Bookkeeping common to leaving a state, so each enter_* action only does its own part.
void SchedulerState::leave(Task& t, TaskState from, TaskState to, Outbox& out) {
  const std::uint32_t slot = protocol::slot_of(t.id);
  auto finished = [](TaskState s) { return s == TaskState::memory || s == TaskState::erred; };
  if (from == TaskState::processing) {
    if (t.processing_on != kNoWorker) {
      auto& w = workers_[t.processing_on.value];
      w.processing.erase(slot);
      note_room(w);
      // Cancelled or forgotten while running: the worker drops it. (Dead workers hear nothing.)
      if (w.alive && (to == TaskState::forgotten || (to == TaskState::erred && t.cancelled))) {
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
    failures_.erase(slot);
    t.cancelled = false;
  }
}

void SchedulerState::enter_waiting(Task&, Outbox&) {}

void SchedulerState::enter_queued(Task& t, Outbox&) {
  if (is_root(t)) {
    root_queue_.push(QueueEntry{t.priority, protocol::slot_of(t.id), t.seq});
  } else {
    unrunnable_.push_back(Unrunnable{protocol::slot_of(t.id), now_ms_});
  }
}

void SchedulerState::enter_processing(Task& t, Outbox& out) {
  auto& w = workers_[t.processing_on.value];
  w.processing.insert(protocol::slot_of(t.id));
  protocol::ComputeTask m;
  m.task = t.id;
  m.key = key_of(t);
  m.func = func_names_[t.func];
  m.args = args_of(t);
  m.resources = resources_of(t);
  m.priority = t.priority;
  if (t.push_result) {
    for (ClientId c : t.wanted_by) {
      const auto& rec = clients_[c.value];
      if (rec.alive && !rec.data_identity.empty()) m.push_to.push_back(rec.data_identity);
    }
    m.dependents_waiting = t.unfinished_dependents > 0;
  }
  if (early_slot_ == protocol::slot_of(t.id)) m.early_nonce = early_nonce_;
  m.deps.reserve(t.n_deps);
  for (auto d : deps_of(t)) {
    protocol::DepLocation loc{tasks_[d].id, tasks_[d].who_has.to_vector(), {}};
    loc.addresses.reserve(loc.holders.size());
    for (auto h : loc.holders) loc.addresses.push_back(workers_[h.value].info.address);
    m.deps.push_back(std::move(loc));
  }
  out.worker(w.id, std::move(m));
}

void SchedulerState::enter_memory(Task& t, Outbox& out) {
  const std::uint32_t slot = protocol::slot_of(t.id);
  for (auto d : deps_of(t)) --tasks_[d].unfinished_dependents;
  std::vector<std::uint32_t> ready;
  for (auto d : t.dependents) {
    Task& dt = tasks_[d];
    if (dt.waiting_on > 0) --dt.waiting_on;
    if (dt.state == TaskState::waiting && dt.waiting_on == 0) ready.push_back(d);
  }
  notify_done(t, out);
  for (auto d : ready) {
    if (tasks_[d].state == TaskState::waiting && tasks_[d].waiting_on == 0) schedule_ready(d, out);
  }
  // Inputs nobody needs any more are dropped from the workers.
  auto deps = deps_of(tasks_[slot]);
  for (auto d : std::vector<std::uint32_t>(deps.begin(), deps.end())) maybe_release_data(d, out);
  maybe_release_data(slot, out);
}

void SchedulerState::enter_erred(Task& t, Outbox& out) {
  auto deps = deps_of(t);
  for (auto d : deps) --tasks_[d].unfinished_dependents;
  const Failure* f = failure_of(t);
  for (ClientId c : t.wanted_by) {
    if (t.cancelled) {
      out.client(c, protocol::KeyCancelled{std::string(key_of(t)), f->message});
    } else {
      out.client(c, protocol::KeyErred{std::string(key_of(t)), f->func, f->message});
    }
  }
  for (auto d : std::vector<std::uint32_t>(deps.begin(), deps.end())) maybe_release_data(d, out);
}

void SchedulerState::enter_released(Task&, TaskState, Outbox&) {}

void SchedulerState::enter_forgotten(Task& t, TaskState from, Outbox& out) {
  (void)out;
  const std::uint32_t slot = protocol::slot_of(t.id);
  key_index_.erase(key_of(t), slot);
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
  std::uint32_t gen = protocol::generation_of(t.id) + 1;
  free_task_storage(slot);
  tasks_[slot] = Task{};
  tasks_[slot].id = protocol::make_task_id(slot, gen);
  tasks_[slot].state = TaskState::forgotten;
  free_slots_.push_back(slot);
}

}  // namespace dtask::scheduler

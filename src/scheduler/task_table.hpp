// The scheduler's task storage: task records by slot, their keys/inputs/arguments in an arena, side tables.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/messages.hpp"
#include "scheduler/task_state.hpp"
#include "scheduler/task_storage.hpp"

namespace dtask::scheduler {

using protocol::ClientId;
using protocol::TaskId;
using protocol::WorkerId;

inline constexpr WorkerId kNoWorker{0xFFFFFFFFu};

struct Failure {
  std::string func;     // the task that actually failed
  std::string message;
};

// One task as the scheduler keeps it. Sized for 10M-task graphs: only what every task needs sits
// here (120 bytes); its key, dependency slots and arguments are one blob in the arena (see
// TaskTable::key_of / deps_of), and what few tasks have (restrictions, resources, arguments
// with side frames, the failure of an erred task) lives in side tables keyed by slot.
struct Task {
  TaskId id;
  std::uint64_t seq = 0;      // submission order, for the root queue
  std::uint64_t nbytes = 0;
  SmallList<std::uint32_t> dependents;  // slots
  SmallList<WorkerId> who_has;
  SmallList<ClientId> wanted_by;
  TaskArena::Ref blob;                  // [deps: n_deps slots][key: key_size bytes][encoded args]
  std::uint32_t key_size = 0;
  std::uint32_t n_deps = 0;
  std::uint32_t func = 0;                 // index into the table's function names
  std::uint32_t waiting_on = 0;           // deps not in memory
  std::uint32_t unfinished_dependents = 0;  // dependents not in memory or erred
  std::int32_t priority = 0;
  std::uint32_t retries_left = 0;
  WorkerId processing_on = kNoWorker;
  WorkerId steal_thief = kNoWorker;
  TaskState state = TaskState::released;
  bool allow_other : 1 = false;
  bool steal_pending : 1 = false;
  bool cancelled : 1 = false;
  bool has_extras : 1 = false;  // an entry in TaskTable's extras
  bool push_result : 1 = false;  // ComputeTask names the wanting clients (pushed_results.cpp)
};
// Every byte here is paid 10M times in a big graph (issue 4, W9: <= 300 bytes per task in all).
static_assert(sizeof(Task) <= 120, "Task grew: measure W9 (dtask_bench --workloads W9) before relaxing this");

// The rarely used part of a task, kept beside the table so that the common task pays one bit.
struct TaskExtras {
  std::vector<std::string> restrictions;  // worker names
  protocol::Resources resources;
  // Arguments carrying side frames (bulk data) are kept as they came instead of in the arena:
  // the frames are shared buffers, and flattening them would copy the data.
  bool args_here = false;
  std::vector<protocol::TaskArg> args;
};

// Owns every task's storage and nothing of its life: slots (reused, each reuse bumps the task id's
// generation), the arena blob per task, the key index, the side tables and the interned function
// names. It never changes a task's state or links; SchedulerState and its state machine do.
//
// Blob layout: [input slots, 4 bytes each][key][varint n_args, then per argument: kind byte,
// and either varint length + MessagePack header (a value) or varint count + slots (inputs)].
// Inputs are stored as slots, not task ids: an input cannot be forgotten while a task naming it
// exists, so its current id is always the one the task was submitted against.
class TaskTable {
 public:
  // ---- records ----
  Task& operator[](std::uint32_t slot) { return tasks_[slot]; }
  const Task& operator[](std::uint32_t slot) const { return tasks_[slot]; }
  std::size_t slots() const { return tasks_.size(); }  // slots ever used, free ones included
  std::size_t size() const { return key_index_.size(); }  // tasks alive (indexed by key)
  std::size_t arena_chunks() const { return arena_.chunks_held(); }
  // The live task with this id, or null (forgotten, or the slot was reused).
  Task* lookup(TaskId id) {
    std::uint32_t slot = protocol::slot_of(id);
    if (slot >= tasks_.size()) return nullptr;
    Task& t = tasks_[slot];
    return t.id != id || t.state == TaskState::forgotten ? nullptr : &t;
  }
  const Task* lookup(TaskId id) const { return const_cast<TaskTable*>(this)->lookup(id); }
  std::uint32_t slot_of_key(std::string_view key) const {
    return key_index_.find(key, [this](std::uint32_t slot) { return key_of(tasks_[slot]); });
  }

  // ---- a task's life in storage ----
  // A fresh record (state released, id of the slot's next generation) holding the spec's key,
  // inputs (as slots, each once), arguments, function, priority, retries and restrictions; the
  // key is indexed. `bad` says why it cannot run (an unknown input), empty if it can. The
  // spec's arguments and restrictions are moved from.
  std::uint32_t add(protocol::TaskSpec& spec, std::string& bad);
  // Drops everything the task owns (arena bytes, side tables, key index entry) and frees the
  // slot; the record stays as a `forgotten` placeholder with the next generation's id.
  void free(std::uint32_t slot);

  // ---- what a task holds ----
  std::string_view key_of(const Task& t) const {
    return t.blob.empty() ? std::string_view{} : std::string_view(arena_.data(t.blob) + t.n_deps * 4, t.key_size);
  }
  // Slots of the task's inputs, each once, in the order the arguments name them.
  std::span<const std::uint32_t> deps_of(const Task& t) const {
    if (t.n_deps == 0) return {};
    return {reinterpret_cast<const std::uint32_t*>(arena_.data(t.blob)), t.n_deps};
  }
  // The arguments as a worker gets them: dependencies named by task id.
  std::vector<protocol::TaskArg> args_of(const Task& t) const;
  const std::vector<std::string>& restrictions_of(const Task& t) const {
    return t.has_extras ? extras_.at(protocol::slot_of(t.id)).restrictions : kNoRestrictions;
  }
  const protocol::Resources& resources_of(const Task& t) const {
    return t.has_extras ? extras_.at(protocol::slot_of(t.id)).resources : kNoResources;
  }
  // The rarely used part (restrictions, resources, arguments with frames), or null.
  const TaskExtras* extras_of(const Task& t) const {
    return t.has_extras ? &extras_.at(protocol::slot_of(t.id)) : nullptr;
  }
  const std::string& func_name(std::uint32_t f) const { return func_names_.at(f); }
  const std::string& func_of(const Task& t) const { return func_names_[t.func]; }

  // ---- an erred task's failure (shared by every task it propagated to) ----
  const Failure* failure_of(const Task& t) const {
    auto it = failures_.find(protocol::slot_of(t.id));
    return it == failures_.end() ? nullptr : it->second.get();
  }
  std::shared_ptr<const Failure> shared_failure_of(const Task& t) const {
    auto it = failures_.find(protocol::slot_of(t.id));
    return it == failures_.end() ? nullptr : it->second;
  }
  void set_failure(std::uint32_t slot, std::shared_ptr<const Failure> f) { failures_[slot] = std::move(f); }
  void clear_failure(std::uint32_t slot) { failures_.erase(slot); }

 private:
  static inline const std::vector<std::string> kNoRestrictions{};
  static inline const protocol::Resources kNoResources{};

  std::uint32_t allocate_slot();
  std::uint32_t intern_func(const std::string& name);
  TaskExtras& extras_for(std::uint32_t slot);
  // Lays out the key, inputs and arguments in the arena and indexes the key.
  void store_spec(std::uint32_t slot, protocol::TaskSpec& spec, std::string& bad);

  // A deque: growing never copies the table nor leaves half of it empty, and a Task& stays valid
  // while new tasks are added.
  std::deque<Task> tasks_;
  std::vector<std::uint32_t> free_slots_;
  TaskArena arena_;      // every task's key, input slots and encoded arguments
  KeyIndex key_index_;   // key (in the arena) -> slot
  std::unordered_map<std::uint32_t, TaskExtras> extras_;                      // by slot, has_extras
  std::unordered_map<std::uint32_t, std::shared_ptr<const Failure>> failures_;  // by slot, erred only
  std::vector<std::uint32_t> scratch_refs_;  // store_spec's working space, kept to spare allocations
  std::vector<std::uint32_t> scratch_deps_;
  std::vector<std::string> func_names_;
  std::unordered_map<std::string, std::uint32_t> func_index_;
};

}  // namespace dtask::scheduler

// The scheduler's brain: task graph, worker pool and every decision, as pure code over an outbox.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <optional>
#include <span>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <dtask/types.hpp>

#include "protocol/messages.hpp"
#include "scheduler/task_state.hpp"
#include "scheduler/task_storage.hpp"

namespace dtask::scheduler {

using protocol::ClientId;
using protocol::TaskId;
using protocol::WorkerId;

inline constexpr WorkerId kNoWorker{0xFFFFFFFFu};

struct SchedulerConfig {
  // Tasks without dependencies wait in the scheduler's queue; a worker holds at most
  // nthreads * saturation + saturation_extra of them at once. Idle workers steal the rest.
  // The extra slots keep a worker busy while its refill travels: with 32, a worker finishing
  // microsecond tasks emptied its queue before the scheduler's next batch arrived (W2 100k map:
  // ~120k tasks/s with 32, ~170-185k with 128, no gain beyond). Stealing evens out long tasks.
  double saturation = 2.0;
  std::uint32_t saturation_extra = 128;
  // ...but only while the results a worker produces are small: once its recent results average
  // more than this, it is dealt no extra slots (nthreads * saturation only), so tasks that load
  // big chunks are not run far ahead of the tasks that consume them (Dask's "root task
  // overproduction", which its queuing exists to prevent).
  std::uint64_t saturation_extra_max_result_bytes = 64 * 1024;
  std::uint64_t worker_timeout_ms = 5000;     // silent this long: the worker is dead
  std::uint64_t client_timeout_ms = 5000;     // silent this long: the client is gone
  std::uint64_t no_worker_timeout_ms = 10000; // restricted task with no matching worker: error
  std::uint32_t heartbeat_ms = 500;
  // Batch jobs (MPI runner): a worker stopped by a signal (scancel, Ctrl-C, walltime) stops the
  // whole job with that code, instead of quietly shrinking it.
  bool stop_job_when_worker_signalled = false;
  // Which latency shortcuts the scheduler takes part in (push_results: naming the waiting
  // clients in ComputeTask; early_start: placing a task where its client started it early).
  FastPaths fast_paths = FastPaths::from_environment();
};

// Everything the scheduler sends, collected while a batch of input is handled; the server
// groups it per destination and sends one message per peer (batching is free).
struct Outbox {
  std::vector<std::pair<WorkerId, protocol::SchedulerToWorker>> to_workers;
  std::vector<std::pair<ClientId, protocol::SchedulerToClient>> to_clients;
  void worker(WorkerId w, protocol::SchedulerToWorker m) { to_workers.emplace_back(w, std::move(m)); }
  void client(ClientId c, protocol::SchedulerToClient m) { to_clients.emplace_back(c, std::move(m)); }
  bool empty() const { return to_workers.empty() && to_clients.empty(); }
};

struct Failure {
  std::string func;     // the task that actually failed
  std::string message;
};

// One task as the scheduler keeps it. Sized for 10M-task graphs: only what every task needs sits
// here (120 bytes); its key, dependency slots and arguments are one blob in the arena (see
// SchedulerState::key_of / deps_of), and what few tasks have (restrictions, resources, arguments
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
  std::uint32_t func = 0;                 // index into func_names_
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
  bool has_extras : 1 = false;  // an entry in SchedulerState::extras_
  bool push_result : 1 = false;  // ComputeTask names the wanting clients (protocol::ResultPushed)
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

struct WorkerRecord {
  WorkerId id;
  std::string identity;  // ZeroMQ routing id
  protocol::RegisterWorker info;
  bool alive = true;
  SlotSet processing;  // slots
  SlotSet has_what;    // slots
  std::uint64_t nbytes = 0;
  std::uint64_t last_seen_ms = 0;
  std::uint32_t stealing_in = 0;  // steal requests on their way to this worker
  std::uint32_t capacity = 0;     // root tasks it may hold at once (nthreads * saturation + extra)
  std::uint64_t result_bytes_avg = 0;  // moving average of its results' sizes (decides the extra)
  bool in_room = false;           // listed in SchedulerState::room_
};

struct ClientRecord {
  ClientId id;
  std::string identity;
  std::string name;
  std::string data_identity;  // its routing id at workers' data servers (results pushed there)
  bool alive = true;
  std::uint64_t last_seen_ms = 0;
};

// Outcome of a transition request: illegal ones are refused, never half-applied.
struct TransitionResult {
  bool ok = true;
  std::string error;
};

class SchedulerState {
 public:
  explicit SchedulerState(SchedulerConfig config = {});

  // ---- peers ----
  // A worker registration; the outcome is a Welcome or a Rejected in the outbox.
  std::optional<WorkerId> add_worker(const protocol::RegisterWorker& reg, std::string identity, std::uint64_t now,
                                     Outbox& out, std::string* reject_reason = nullptr);
  std::optional<ClientId> add_client(const protocol::RegisterClient& reg, std::string identity, std::uint64_t now,
                                     Outbox& out);
  void remove_worker(WorkerId w, const std::string& reason, Outbox& out);
  void remove_client(ClientId c, Outbox& out);

  // ---- input: one handler per request type ----
  void handle(WorkerId from, protocol::WorkerToScheduler msg, std::uint64_t now, Outbox& out);
  void handle(ClientId from, protocol::ClientToScheduler msg, std::uint64_t now, Outbox& out);
  // Periodic: liveness, stealing, unrunnable timeouts. Returns the workers and clients it found dead.
  struct TickResult {
    std::vector<WorkerId> dead_workers;
    std::vector<ClientId> dead_clients;
  };
  TickResult tick(std::uint64_t now, Outbox& out);
  // The loop was stalled (big graph): nobody's silence in that time counts against them.
  void forgive_silence(std::uint64_t now);

  // ---- the state machine (scheduler/state_machine.cpp) ----
  TransitionResult transition(std::uint32_t slot, TaskState to, Outbox& out);

  // ---- decisions ----
  std::optional<WorkerId> decide_worker(const Task& t) const;
  std::uint32_t capacity(const WorkerRecord& w) const;
  // Lists `w` in room_ if it has a free slot and is not listed yet (state_machine.cpp calls it
  // when a task leaves a worker).
  void note_room(WorkerRecord& w);

  // ---- queries ----
  const Task* find(std::string_view key) const;
  const Task* task(std::uint32_t slot) const;
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
  const std::vector<std::string>& restrictions_of(const Task& t) const;
  const protocol::Resources& resources_of(const Task& t) const;
  const Failure* failure_of(const Task& t) const;
  const WorkerRecord* worker(WorkerId id) const;
  const WorkerRecord* worker_by_identity(const std::string& identity) const;
  const ClientRecord* client(ClientId id) const;
  const ClientRecord* client_by_identity(const std::string& identity) const;
  std::size_t count(TaskState s) const { return counts_[static_cast<std::size_t>(s)]; }
  std::size_t n_tasks() const { return key_index_.size(); }
  std::size_t arena_chunks() const { return arena_.chunks_held(); }
  std::vector<WorkerId> alive_workers() const;
  std::vector<ClientId> alive_clients() const;
  nlohmann::json info() const;  // scheduler_info(): workers and task counts (also the dashboard's feed)
  const std::string& func_name(std::uint32_t f) const { return func_names_.at(f); }

  bool shutdown_requested() const { return shutdown_requested_; }
  int shutdown_code() const { return shutdown_code_; }
  const std::string& shutdown_reason() const { return shutdown_reason_; }
  // Starts a whole-cluster shutdown: workers and clients are told, the server then waits for them.
  void request_shutdown(int code, const std::string& reason, Outbox& out);
  std::uint64_t stale_messages() const { return stale_messages_; }

 private:
  friend struct StateMachine;

  // handlers
  void on_submit(ClientId c, protocol::SubmitTasks& m, std::uint64_t now, Outbox& out);
  void on_release_keys(ClientId c, const protocol::ReleaseKeys& m, Outbox& out);
  void on_cancel_keys(ClientId c, const protocol::CancelKeys& m, Outbox& out);
  void on_task_done(WorkerId w, const protocol::TaskDone& m, Outbox& out);
  void on_results_received(ClientId c, const protocol::ResultsReceived& m, Outbox& out);
  // The task in `slot`, processing on `w`, finished there: the one path for a worker's TaskDone
  // and a client's receipt of a pushed result.
  void finish_on(WorkerId w, std::uint32_t slot, std::uint64_t nbytes, Outbox& out);
  // What follows completions (TaskDone, receipts): forget what nobody needs any more, start
  // what became ready, and let a worker they left with room steal if the root queue is empty.
  void after_finished(std::span<const WorkerId> finished_on, Outbox& out);
  void on_task_failed(WorkerId w, const protocol::TaskFailed& m, Outbox& out);
  void on_replicas_added(WorkerId w, const protocol::ReplicasAdded& m, Outbox& out);
  void on_steal_reply(WorkerId w, const protocol::StealReply& m, Outbox& out);
  void on_fetch_failed(WorkerId w, const protocol::FetchFailed& m, Outbox& out);

  // transition entry/exit actions (state_machine.cpp)
  void enter_waiting(Task& t, Outbox& out);
  void enter_queued(Task& t, Outbox& out);
  void enter_processing(Task& t, Outbox& out);
  void enter_memory(Task& t, Outbox& out);
  void enter_erred(Task& t, Outbox& out);
  void enter_released(Task& t, TaskState from, Outbox& out);
  void enter_forgotten(Task& t, TaskState from, Outbox& out);
  void leave(Task& t, TaskState from, TaskState to, Outbox& out);

  // graph helpers
  Task* lookup(TaskId id);
  Task& at(std::uint32_t slot) { return tasks_[slot]; }
  std::uint32_t allocate_slot();
  std::uint32_t slot_of_key(std::string_view key) const;
  // Lays out a new task's key, inputs and arguments in the arena; the error says why it cannot run.
  void store_spec(std::uint32_t slot, protocol::TaskSpec& spec, std::string& bad);
  TaskExtras& extras_for(std::uint32_t slot);
  void set_failure(std::uint32_t slot, std::shared_ptr<const Failure> f);
  // Drops everything the task owns outside its record (arena bytes, side tables).
  void free_task_storage(std::uint32_t slot);
  void make_ready_or_wait(std::uint32_t slot, Outbox& out);
  void schedule_ready(std::uint32_t slot, Outbox& out);
  void assign(std::uint32_t slot, WorkerId w, Outbox& out);
  void dispatch(Outbox& out);
  void steal_for_idle(Outbox& out);
  void retry_unrunnable(std::uint64_t now, Outbox& out);
  void fail(std::uint32_t slot, const std::string& func, const std::string& message, bool cancelled, Outbox& out);
  void maybe_release_data(std::uint32_t slot, Outbox& out);
  void maybe_forget(std::uint32_t slot, Outbox& out);
  bool needed(const Task& t) const { return !t.wanted_by.empty() || t.unfinished_dependents > 0; }
  bool is_root(const Task& t) const {
    return t.n_deps == 0 && restrictions_of(t).empty() && resources_of(t).empty();
  }
  void notify_done(const Task& t, Outbox& out);
  bool worker_can_run(const WorkerRecord& w, const Task& t, bool honour_restrictions) const;
  std::uint32_t intern_func(const std::string& name);

  SchedulerConfig config_;
  // A deque: growing never copies the table nor leaves half of it empty, and a Task& stays valid
  // while new tasks are added.
  std::deque<Task> tasks_;
  std::vector<std::uint32_t> free_slots_;
  TaskArena arena_;      // every task's key, input slots and encoded arguments
  KeyIndex key_index_;   // key (in the arena) -> slot
  std::unordered_map<std::uint32_t, TaskExtras> extras_;                      // by slot, has_extras
  std::unordered_map<std::uint32_t, std::shared_ptr<const Failure>> failures_;  // by slot, erred only
  std::vector<std::uint32_t> scratch_refs_;  // on_submit's per-task working space, kept to spare allocations
  std::vector<std::uint32_t> scratch_deps_;
  std::vector<std::string> func_names_;
  std::unordered_map<std::string, std::uint32_t> func_index_;
  std::size_t counts_[kNumTaskStates] = {};
  std::uint64_t next_seq_ = 0;

  // Root tasks waiting for a worker slot: highest priority first, then submission order.
  // 16 bytes: a slot plus the task's unique seq identify it as well as a TaskId would.
  struct QueueEntry {
    std::int32_t priority;
    std::uint32_t slot;
    std::uint64_t seq;
    bool operator<(const QueueEntry& o) const {
      return priority != o.priority ? priority < o.priority : seq > o.seq;
    }
  };
  std::priority_queue<QueueEntry> root_queue_;
  // Queued tasks no current worker may run, and since when (for no_worker_timeout_ms).
  struct Unrunnable {
    std::uint32_t slot;
    std::uint64_t since_ms;
  };
  std::vector<Unrunnable> unrunnable_;

  std::vector<WorkerRecord> workers_;  // indexed by WorkerId, never reused
  // Workers that may have a free slot for a root task. Kept so that dispatching after each
  // finished task costs O(workers with room), not O(all workers): at 1,000 workers a full scan
  // per TaskDone was the scheduler's largest cost. Entries go stale (full, dead) and are dropped
  // lazily by dispatch().
  std::vector<WorkerId> room_;
  std::unordered_map<std::string, WorkerId> worker_identities_;
  std::vector<ClientRecord> clients_;
  std::unordered_map<std::string, ClientId> client_identities_;
  mutable std::uint64_t round_robin_ = 0;
  std::uint64_t now_ms_ = 0;
  std::vector<std::uint32_t> forget_queue_;  // slots to re-check after a forget (no recursion)
  bool forgetting_ = false;
  const Payload* inline_result_ = nullptr;  // the result inside the TaskDone being handled
  const ClientId* receipt_from_ = nullptr;  // the client whose receipt is being handled: has it
  // The early start (TaskSpec::early_nonce) of the task being placed by on_submit, for its
  // ComputeTask; never stored per task.
  std::uint32_t early_slot_ = kNoSlot;
  std::uint64_t early_nonce_ = 0;
  std::uint64_t early_placed_ = 0;  // tasks placed where the client had started them early
  std::uint64_t stale_messages_ = 0;
  std::uint64_t receipts_accepted_ = 0;  // completions a client reported first (ResultsReceived)
  // Places a fresh root task on the worker its client started it on early, if that worker has
  // a free thread; false leaves it to the usual placement.
  bool place_early(std::uint32_t slot, std::uint64_t nonce, WorkerId w, Outbox& out);

  bool shutdown_requested_ = false;
  int shutdown_code_ = 0;
  std::string shutdown_reason_;
};

}  // namespace dtask::scheduler

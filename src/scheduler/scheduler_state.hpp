// The scheduler's brain: task graph, worker pool and every decision, as pure code over an outbox.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include <dtask/types.hpp>

#include "protocol/messages.hpp"
#include "scheduler/observatory.hpp"
#include "scheduler/task_event.hpp"
#include "scheduler/task_state.hpp"
#include "scheduler/task_storage.hpp"
#include "scheduler/task_table.hpp"

namespace dtask::scheduler {

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
  // KilledWorker (Dask's allowed-failures): a task fails once it has been running on this many
  // workers that died (a death report naming it, or a heartbeat timeout while it was processing
  // there); 0: never, it is retried as often as workers die. Dask fails a task after N + 1 such
  // deaths; here N is the number of deaths itself, as issue 13 words it ("3 workers that died").
  // A goodbye is not a death, and retries=n does not apply to deaths (Dask's rule too).
  std::uint32_t allowed_failures = 3;
  // Which latency shortcuts the scheduler takes part in (push_results: naming the waiting
  // clients in ComputeTask; early_start: placing a task where its client started it early).
  FastPaths fast_paths = FastPaths::from_environment();
  // The workers' target threshold (worker/memory_policy.hpp, MemoryThresholds::target): held
  // results above this fraction of a worker's memory_limit are spilled. Placement prefers a
  // worker that a task's expected result keeps under it (memory.cpp); 0 turns the preference off.
  double memory_target = 0.60;
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
  bool retiring = false;          // leaving on its own (retire.cpp): no new work, results handed over
  bool wait_for_taker = false;    // --lifetime: results nobody can take yet wait for a new worker
  bool told_no_taker = false;     // its "waits for a worker" line was logged
  std::uint64_t link_closed_ms = 0;  // when its connection was seen to close (0: not); see connection_closed
  std::uint64_t last_busy_ms = 0;    // last tick (or registration) it had a task processing: idle since then
  bool retire_asked = false;         // PleaseRetire sent for a client's RetireWorkers (retire.cpp)
  // Its last MemoryReport (memory.cpp), if it sent one, and its nbytes then: results that landed
  // since are counted on top of the report's held bytes until the next report.
  protocol::MemoryReport memory;
  bool memory_reported = false;
  std::uint64_t nbytes_at_report = 0;
  bool paused() const { return memory.paused; }  // starts nothing new: gets no new placement
};

struct ClientRecord {
  ClientId id;
  std::string identity;
  std::string name;
  std::string data_identity;  // its routing id at workers' data servers (results pushed there)
  bool alive = true;
  std::uint64_t last_seen_ms = 0;
};

// How a worker was lost; it decides which of its tasks are suspected of killing it (KilledWorker).
struct WorkerLoss {
  enum class Kind : std::uint8_t {
    goodbye,            // it left in order: nothing suspected
    died,               // its supervisor reported the death (RegisterWorker::previous): the tasks
                        // the report names as running are suspected, the others only rescheduled
    heartbeat_timeout,  // silent too long, no report: every task processing there is suspected
    connection_lost,    // its connection closed and it said nothing since, no report: as heartbeat_timeout
  };
  Kind kind = Kind::goodbye;
  std::string reason;              // died: e.g. "killed by signal 11 (SIGSEGV)"
  std::vector<TaskId> running;     // died: what its executor was running

  static WorkerLoss goodbye() { return {Kind::goodbye, "goodbye", {}}; }
  static WorkerLoss died(std::string reason, std::vector<TaskId> running) {
    return {Kind::died, std::move(reason), std::move(running)};
  }
  static WorkerLoss heartbeat_timeout(std::uint64_t silent_ms) {
    return {Kind::heartbeat_timeout, "stopped responding (silent for more than " + std::to_string(silent_ms) + " ms)", {}};
  }
  static WorkerLoss connection_lost() {
    return {Kind::connection_lost, "its connection closed and it did not come back (no supervisor report)", {}};
  }
  bool is_death() const { return kind != Kind::goodbye; }
};

// Outcome of a transition request: illegal ones are refused, never half-applied.
struct TransitionResult {
  bool ok = true;
  std::string error;
};

// The scheduler's decisions, pure: messages and time in, messages out (Outbox), no sockets, no
// clocks, no threads (the server's loop thread owns it). Its code is split by concern:
//   scheduler_state.cpp  peers, one handler per request, graph bookkeeping (release, forget, fail)
//   state_machine.cpp    the table of legal transitions and their entry/exit actions
//   placement.cpp        which worker runs what: decide_worker, the root queue, dispatch, stealing
//   pushed_results.cpp   fast path: results pushed to the waiting client, its receipts
//   early_start.cpp      fast path: placing a task where its client already started it
//   retire.cpp           retiring workers: no new work, their unique results copied, then leave
//   memory.cpp           workers' memory reports: paused workers, placement that avoids a spill
//   task_table.cpp       storage (TaskTable): slots, arena layout, key index, side tables
class SchedulerState {
 public:
  explicit SchedulerState(SchedulerConfig config = {}, std::shared_ptr<spdlog::logger> log = nullptr);

  // ---- peers ----
  // A worker registration; the outcome is a Welcome or a Rejected in the outbox.
  std::optional<WorkerId> add_worker(const protocol::RegisterWorker& reg, std::string identity, std::uint64_t now,
                                     Outbox& out, std::string* reject_reason = nullptr);
  std::optional<ClientId> add_client(const protocol::RegisterClient& reg, std::string identity, std::uint64_t now,
                                     Outbox& out);
  // A worker left or died (WorkerLoss); on a death, suspected tasks may fail as KilledWorker.
  void remove_worker(WorkerId w, const WorkerLoss& loss, Outbox& out);
  void remove_client(ClientId c, Outbox& out);

  // ---- input: one handler per request type ----
  void handle(WorkerId from, protocol::WorkerToScheduler msg, std::uint64_t now, Outbox& out);
  void handle(ClientId from, protocol::ClientToScheduler msg, std::uint64_t now, Outbox& out);
  // Periodic: liveness, stealing, unrunnable timeouts. Returns the workers and clients it found dead.
  struct TickResult {
    std::vector<WorkerId> dead_workers;    // silent past worker_timeout_ms
    std::vector<WorkerId> closed_workers;  // connection closed, silent since (connection_closed)
    std::vector<ClientId> dead_clients;
  };
  TickResult tick(std::uint64_t now, Outbox& out);
  // The server saw worker `w`'s connection close (a dead process's kernel closes its sockets at
  // once). If it says nothing for heartbeat_ms (a live worker speaks twice in that time, also after
  // a reconnection), tick() removes it as connection_lost: loss within a second, not at the
  // heartbeat timeout. A supervisor's report (a same-name registration) usually comes first.
  void connection_closed(WorkerId w, std::uint64_t now);
  // Removes the workers whose grace after a closed connection has ended (tick() calls it too;
  // the server also at the first grace's end, so the loss is not held up to the next tick).
  std::vector<WorkerId> expire_closed_links(std::uint64_t now, Outbox& out);
  // The loop was stalled (big graph): nobody's silence in that time counts against them.
  void forgive_silence(std::uint64_t now);

  // ---- the state machine (scheduler/state_machine.cpp) ----
  // Applies `event` to the task in `slot` if the table allows it from the task's state; a refused
  // event changes nothing, is counted (refused_transitions()) and logged once per state pair.
  TransitionResult transition(std::uint32_t slot, const TaskEvent& event, Outbox& out);
  std::uint64_t refused_transitions() const { return refused_transitions_; }

  // ---- decisions (scheduler/placement.cpp) ----
  std::optional<WorkerId> decide_worker(const Task& t) const;
  std::uint32_t capacity(const WorkerRecord& w) const;
  // Lists `w` in room_ if it has a free slot and is not listed yet (state_machine.cpp calls it
  // when a task leaves a worker).
  void note_room(WorkerRecord& w);

  // ---- queries ----
  const TaskTable& tasks() const { return tasks_; }
  const Task* find(std::string_view key) const;
  const Task* task(std::uint32_t slot) const;
  std::string_view key_of(const Task& t) const { return tasks_.key_of(t); }
  std::span<const std::uint32_t> deps_of(const Task& t) const { return tasks_.deps_of(t); }
  std::vector<protocol::TaskArg> args_of(const Task& t) const { return tasks_.args_of(t); }
  const std::vector<std::string>& restrictions_of(const Task& t) const { return tasks_.restrictions_of(t); }
  const protocol::Resources& resources_of(const Task& t) const { return tasks_.resources_of(t); }
  const Failure* failure_of(const Task& t) const { return tasks_.failure_of(t); }
  const WorkerRecord* worker(WorkerId id) const;
  const WorkerRecord* worker_by_identity(const std::string& identity) const;
  const ClientRecord* client(ClientId id) const;
  const ClientRecord* client_by_identity(const std::string& identity) const;
  std::size_t count(TaskState s) const { return counts_[static_cast<std::size_t>(s)]; }
  std::size_t n_tasks() const { return tasks_.size(); }
  std::size_t arena_chunks() const { return tasks_.arena_chunks(); }
  std::vector<WorkerId> alive_workers() const;
  std::vector<ClientId> alive_clients() const;
  // scheduler_info(): workers, task counts and counters (also the dashboard's feed).
  nlohmann::json info() const;
  const std::string& func_name(std::uint32_t f) const { return tasks_.func_name(f); }
  const std::shared_ptr<spdlog::logger>& logger() const { return log_; }

  // ---- observability (observatory.cpp; docs/dashboard.md) ----
  Observatory& observatory() { return observatory_; }
  const Observatory& observatory() const { return observatory_; }
  // Per task name, in order of first submission: finished and failed, cumulative.
  std::vector<Observatory::Progress> progress() const;
  // Tasks finished so far (the progress rows' done, summed).
  std::uint64_t finished_total() const;
  // The dashboard's snapshot (docs/dashboard.md); `scheduler` is the scheduler object (address,
  // host, job id, its process's CPU and memory), which only the server can measure.
  nlohmann::json snapshot(std::uint64_t now, const nlohmann::json& scheduler) const;
  // The report JSON of everything kept since `since_ms` (wall clock; 0: the whole job).
  nlohmann::json report(std::uint64_t now, std::uint64_t since_ms, const nlohmann::json& scheduler) const;
  // What the server says about its process in snapshots and reports (set_process_info).
  void set_process_info(nlohmann::json scheduler) { process_info_ = std::move(scheduler); }

  // The dashboard's URL with its token, told to every client in its welcome (empty: none).
  void set_dashboard_link(std::string link) { dashboard_link_ = std::move(link); }
  const std::string& dashboard_link() const { return dashboard_link_; }

  bool shutdown_requested() const { return shutdown_requested_; }
  int shutdown_code() const { return shutdown_code_; }
  const std::string& shutdown_reason() const { return shutdown_reason_; }
  // Starts a whole-cluster shutdown: workers and clients are told, the server then waits for them.
  void request_shutdown(int code, const std::string& reason, Outbox& out);
  std::uint64_t stale_messages() const { return stale_messages_; }

 private:
  friend struct StateMachine;

  // ---- handlers (scheduler_state.cpp, pushed_results.cpp) ----
  void on_submit(ClientId c, protocol::SubmitTasks& m, Outbox& out);
  void on_release_keys(ClientId c, const protocol::ReleaseKeys& m, Outbox& out);
  void on_cancel_keys(ClientId c, const protocol::CancelKeys& m, Outbox& out);
  void on_task_done(WorkerId w, const protocol::TaskDone& m, Outbox& out);
  void on_results_received(ClientId c, const protocol::ResultsReceived& m, Outbox& out);
  // What follows completions (TaskDone, receipts): forget what nobody needs any more, start
  // what became ready, and let a worker they left with room steal if the root queue is empty.
  void after_finished(std::span<const WorkerId> finished_on, Outbox& out);
  void on_task_failed(WorkerId w, const protocol::TaskFailed& m, Outbox& out);
  void on_replicas_added(WorkerId w, const protocol::ReplicasAdded& m, Outbox& out);
  void on_steal_reply(WorkerId w, const protocol::StealReply& m, Outbox& out);
  void on_fetch_failed(WorkerId w, const protocol::FetchFailed& m, Outbox& out);
  void on_telemetry(WorkerId w, const protocol::Telemetry& m);
  // InfoRequest: scheduler_info(), the workers' logs or the report (InfoRequest::what).
  nlohmann::json answer_info(const protocol::InfoRequest& m) const;

  // ---- retiring workers (retire.cpp) ----
  void on_retire_worker(WorkerId w, const protocol::RetireWorker& m, Outbox& out);
  // A client asks named workers to leave (scale-down): each live one hears PleaseRetire once.
  void on_retire_workers(ClientId c, const protocol::RetireWorkers& m, Outbox& out);
  // Hands over what only retiring workers hold and lets go those with nothing left to give.
  void advance_retirements(Outbox& out);

  // ---- workers' memory (memory.cpp) ----
  void on_memory_report(WorkerId w, const protocol::MemoryReport& m, Outbox& out);
  // The bytes of results `w` holds in memory as best known: its last report's held bytes plus
  // what landed there since (the scheduler's own nbytes before any report).
  std::uint64_t held_estimate(const WorkerRecord& w) const;
  // What a task's result is expected to weigh: the moving average of its function's results.
  std::uint64_t expected_result_bytes(const Task& t) const;
  // True when placing `t` on `w` would push its held results above memory_target x its limit
  // (a worker without a limit never).
  bool would_spill(const WorkerRecord& w, const Task& t) const;
  // A result of `nbytes` of function `func` finished: its function's average moves.
  void note_func_result(std::uint32_t func, std::uint64_t nbytes);
  // True when a paused worker could run `t` (it waits for it to resume instead of failing).
  bool paused_worker_could_run(const Task& t) const;

  // ---- transition entry/exit actions (state_machine.cpp) ----
  void leave(Task& t, TaskState from, const TaskEvent& ev, Outbox& out);
  void enter_waiting(Task& t, const TaskEvent& ev, Outbox& out);
  void enter_queued(Task& t, const TaskEvent& ev, Outbox& out);
  void enter_processing(Task& t, const TaskEvent& ev, Outbox& out);
  void enter_memory(Task& t, const TaskEvent& ev, Outbox& out);
  void enter_erred(Task& t, const TaskEvent& ev, Outbox& out);
  void enter_released(Task& t, const TaskEvent& ev, Outbox& out);
  void enter_forgotten(Task& t, TaskState from, Outbox& out);
  // Says once per (from, to) pair that the table refused a transition; counts every refusal.
  TransitionResult refuse(const Task& t, TaskState from, TaskEventKind kind);

  // ---- graph bookkeeping (scheduler_state.cpp) ----
  void make_ready_or_wait(std::uint32_t slot, Outbox& out);
  void fail(std::uint32_t slot, const std::string& func, const std::string& message, bool cancelled, Outbox& out);
  void maybe_release_data(std::uint32_t slot, Outbox& out);
  // A task processing on worker `w` when it died: one more death counted against it; true when
  // that reaches allowed_failures and the task (with its dependents) failed as KilledWorker.
  bool suspect(std::uint32_t slot, const WorkerRecord& w, const WorkerLoss& loss, Outbox& out);
  void maybe_forget(std::uint32_t slot, Outbox& out);
  bool needed(const Task& t) const { return !t.wanted_by.empty() || t.unfinished_dependents > 0; }
  bool is_root(const Task& t) const {
    return t.n_deps == 0 && restrictions_of(t).empty() && resources_of(t).empty();
  }
  // KeyDone to every client that wants the finished task, but the one that reported it.
  void notify_done(const Task& t, const TaskEvent& finished, Outbox& out);

  // ---- placement (placement.cpp) ----
  void schedule_ready(std::uint32_t slot, Outbox& out);
  void assign(std::uint32_t slot, WorkerId w, Outbox& out);
  void dispatch(Outbox& out);
  // Gives `w` the first live entry of root_queue_; false if the queue held none.
  bool deal_one(WorkerRecord& w, Outbox& out);
  // Unlists from room_ the workers that are full, dead or retiring.
  void prune_room();
  void steal_for_idle(Outbox& out);
  void retry_unrunnable(std::uint64_t now, Outbox& out);
  bool worker_can_run(const WorkerRecord& w, const Task& t, bool honour_restrictions) const;
  // Resources and restrictions only: whether `w` may ever run `t` (alive, retiring, paused aside).
  bool worker_fits(const WorkerRecord& w, const Task& t, bool honour_restrictions) const;
  // A result of `nbytes` landed on `w`: its average result size decides how far ahead it is dealt.
  void note_result(WorkerRecord& w, std::uint64_t nbytes);

  // ---- fast paths (pushed_results.cpp, early_start.cpp) ----
  // Whether the task's ComputeTask names its waiting clients (decided at submission).
  bool push_result_wanted(const protocol::TaskSpec& spec) const;
  // Fills ComputeTask::push_to / dependents_waiting for a task that pushes its result.
  void add_push_targets(const Task& t, protocol::ComputeTask& m) const;
  // Places a fresh root task on the worker its client started it on early, if that worker has
  // a free thread; false leaves it to the usual placement.
  bool place_early(std::uint32_t slot, std::uint64_t nonce, WorkerId w, Outbox& out);

  SchedulerConfig config_;
  std::shared_ptr<spdlog::logger> log_;
  std::string dashboard_link_;
  Observatory observatory_;
  nlohmann::json process_info_ = nlohmann::json::object();
  // Per function (TaskTable's interned index): tasks in each state now, and how many finished
  // and failed so far. Kept by transition(); the dashboard's progress rows.
  struct FuncCounts {
    std::array<std::uint32_t, kNumTaskStates> now{};
    std::uint64_t done = 0, erred = 0;
    std::uint64_t submitted = 0;  // distinct keys ever submitted
  };
  std::vector<FuncCounts> func_counts_;
  TaskTable tasks_;
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
  // Where in room_ the next deal starts: after the worker dealt to last, so that root tasks
  // submitted one at a time go to each worker in turn (dispatch, placement.cpp).
  std::size_t deal_cursor_ = 0;
  std::unordered_map<std::string, WorkerId> worker_identities_;
  std::vector<ClientRecord> clients_;
  std::unordered_map<std::string, ClientId> client_identities_;
  mutable std::uint64_t round_robin_ = 0;
  std::uint64_t now_ms_ = 0;
  std::vector<std::uint32_t> forget_queue_;  // slots to re-check after a forget (no recursion)
  // A task's failures so far, one numbered line each, joined into its final error. Bounded, so a
  // task retried (or killing workers) a million times with long messages cannot grow without limit.
  struct Attempts {
    static constexpr std::size_t kMaxText = 16000;
    std::string text;          // "<noun> 1<what>\n" lines, at most kMaxText
    std::uint32_t count = 0;   // failures so far
    std::uint32_t omitted = 0; // failures not listed (the text was full)
    void add(const char* noun, const std::string& what) {
      ++count;
      if (text.size() < kMaxText) text += std::string(noun) + " " + std::to_string(count) + what + "\n";
      else ++omitted;
    }
    // The lines, and how many were left out.
    std::string listing(const char* nouns) const {
      return omitted ? text + "(" + std::to_string(omitted) + " more " + nouns + " not listed)\n" : text;
    }
  };
  // The messages of a retried task's failed attempts, by task id ("attempt 1 (worker 'a'): ...");
  // dropped when the task finally fails or is forgotten.
  std::unordered_map<std::uint64_t, Attempts> attempts_;
  // The deaths each suspected task was running through (same shape: "death 1: worker 'a' on host
  // h: killed by signal 11 (SIGSEGV)\n" lines), by task id; dropped when it fails or is forgotten.
  std::unordered_map<std::uint64_t, Attempts> deaths_;
  bool forgetting_ = false;

  // Retiring workers (retire.cpp) and the copies asked for on their behalf, by slot: who was
  // asked to fetch it, from whom, since when (asked again elsewhere if it takes too long).
  struct Handover {
    TaskId task;
    WorkerId from, to;
    std::uint64_t since_ms = 0;
  };
  std::vector<WorkerId> retiring_;
  std::unordered_map<std::uint32_t, Handover> handovers_;
  std::unordered_map<std::uint32_t, std::uint32_t> handed_from_;  // retiring worker -> copies made
  std::uint64_t results_handed_over_ = 0;
  std::uint64_t workers_retired_ = 0;

  // counters (info()["counters"])
  std::uint64_t early_placed_ = 0;  // tasks placed where the client had started them early
  std::uint64_t stale_messages_ = 0;
  std::uint64_t receipts_accepted_ = 0;  // completions a client reported first (ResultsReceived)
  std::uint64_t refused_transitions_ = 0;
  std::uint64_t refused_logged_ = 0;  // bit from*kNumTaskStates+to: that pair was logged already
  std::uint64_t workers_died_ = 0;   // losses that were deaths (reported, or heartbeat timeouts)
  std::uint64_t tasks_killed_ = 0;   // tasks failed as KilledWorker (not counting their dependents)
  std::uint64_t worker_pauses_ = 0;  // reports that turned a worker from running to paused
  // Moving average of result sizes by function index (TaskTable::func names): a task's expected
  // result before it runs (memory.cpp). Grows with the number of distinct functions only.
  std::vector<std::uint64_t> func_result_avg_;

  bool shutdown_requested_ = false;
  int shutdown_code_ = 0;
  std::string shutdown_reason_;
};

}  // namespace dtask::scheduler

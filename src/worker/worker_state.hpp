// The worker's brain: tasks, result store, ready jobs and fetches, as pure code over an outbox.
//
// WorkerState is driven by messages and time (`now` is passed in) and writes everything it wants
// done to a WorkerOutbox; the loop (worker_server.cpp) owns the sockets, decodes, calls it and
// flushes the outbox. What it must ask the executor synchronously (idle? can a queued job still
// be withdrawn? run this job on the loop thread) goes through ExecutorPort. The fast paths live
// in their own units beside it: pushed_results, held_done, early_start, quick_runs (and the
// loop's takeover, loop_takeover, which is the loop's business). Only the thread that owns the
// loop (loop_takeover.hpp: LoopOwner) calls it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include <dtask/types.hpp>

#include "protocol/messages.hpp"
#include "worker/data_store.hpp"
#include "worker/early_start.hpp"
#include "worker/executor.hpp"
#include "worker/held_done.hpp"
#include "worker/memory_policy.hpp"
#include "worker/pushed_results.hpp"
#include "worker/quick_runs.hpp"
#include "worker/retire.hpp"
#include "worker/spill_files.hpp"
#include "worker/telemetry.hpp"
#include "worker/worker_outbox.hpp"

namespace dtask::worker {

using protocol::TaskId;
using protocol::WorkerId;

// Freed results above this many bytes in all are handed back to the OS at once (no nanny).
inline constexpr std::uint64_t kTrimThreshold = 1 << 20;

// What the core asks the executor, synchronously. The loop answers from the real Executor and the
// loop's takeover (loop_takeover.hpp); unit tests from a fake.
class ExecutorPort {
 public:
  virtual ~ExecutorPort() = default;
  // Nothing queued and nothing running.
  virtual bool idle() const = 0;
  // Removes a job that has not started; false if it is running or gone.
  virtual bool withdraw(TaskId id) = 0;
  // The loop thread may still run a task (the standby thread has not taken the loop over).
  virtual bool can_run_here() const = 0;
  // Runs `job` on the calling thread, the loop's. nullopt if the standby thread took the loop over
  // meanwhile: the caller then returns at once and touches nothing (the completion reaches the
  // loop's new thread through the executor, like any other).
  virtual std::optional<Completion> run_here(Job job) = 0;
  // Paused (memory): queued jobs do not start until unpaused; running ones finish.
  virtual void set_paused(bool) {}
};

// A failed spill write (a full disk) is tried again after this long; meanwhile the worker is paused.
inline constexpr std::uint64_t kSpillRetryMs = 1000;
// A MemoryReport goes with the heartbeat when a value moved by this much, or 1 % of the limit if more.
inline constexpr std::uint64_t kMemoryReportStep = 4ull << 20;

struct WorkerConfig {
  FastPaths fast_paths = FastPaths::all();
  std::uint64_t fetch_timeout_ms = 10000;
  std::uint64_t connect_timeout_ms = 30000;
  std::uint64_t scheduler_timeout_ms = 15000;
  // A retiring worker leaves after this long even if its results were not all copied (retire.hpp).
  std::uint64_t drain_timeout_ms = 30000;
  // The scheduler's connection closed and was not made again within this long: it is gone
  // (the server sets transport::kReconnectGraceMs; scheduler_link feeds the events).
  std::uint64_t reconnect_grace_ms = 1000;
  // After this long from started() the worker retires on its own (--lifetime); 0: never.
  std::uint64_t lifetime_ms = 0;
  // The task functions this worker can run (the plugin's); null for an unknown name.
  std::function<const dtask_task_v1*(const std::string&)> find_task;
  std::string tasks_provided;  // for the error of an unknown name: "plugin 'p' provides: a, b"
  std::shared_ptr<spdlog::logger> log;  // null: quiet (unit tests)
  // Memory (memory_policy.hpp, docs/worker.md "Memory"): 0, nothing is spilled, paused or reported.
  // Else the loop runs the spill files' thread for the core's WorkerOutbox::spill requests.
  std::uint64_t memory_limit = 0;
  MemoryThresholds memory_thresholds;
  std::string name;  // for the log lines
  // Where fetches from peers and adopted early starts are recorded, and what goes with each
  // heartbeat (telemetry.hpp; the executor records the other runs). Null: nothing (unit tests).
  std::shared_ptr<TelemetryRecorder> telemetry;
};

class WorkerState {
 public:
  WorkerState(WorkerConfig config, ExecutorPort& executor);

  // The registration went out at `now` (the connect timeout counts from here).
  void started(std::uint64_t now);

  // ---- input: one call per decoded message ----
  void handle(protocol::SchedulerToWorker msg, std::uint64_t now, WorkerOutbox& out);
  // On the data socket, from a client or a peer (`from`: its routing identity).
  void handle_request(protocol::PeerRequest msg, const std::string& from, WorkerOutbox& out);
  // On a peer connection: the answer to our GetData (`now`: when it came, for the fetch's time).
  void handle_reply(protocol::PeerReply msg, std::uint64_t now, WorkerOutbox& out);
  // A task finished on an executor thread.
  void on_completion(Completion c, WorkerOutbox& out);
  // A spill file was written or read (SpillFiles' completion).
  void on_spill(SpillDone d, WorkerOutbox& out);
  // The process's resident memory as last sampled (0: not measured); tick() judges it.
  void memory_sample(std::uint64_t process) { process_memory_ = process; }
  // Leave gracefully (retire.hpp): no new work, unstarted tasks back to the scheduler, results
  // served until the scheduler says WorkerMayLeave or drain_timeout_ms passes. Idempotent.
  void retire(std::uint64_t now, WorkerOutbox& out);
  // The connection to the scheduler closed (false) or was made again (true), as the loop's
  // socket monitor saw it: closed for kSchedulerReconnectGraceMs means the scheduler is gone.
  void scheduler_link(bool up, std::uint64_t now);
  // The data socket refused a push this core asked for (WorkerOutbox::Reply::push).
  void push_refused(PushRef push, WorkerOutbox& out);

  // ---- each pass, in this order ----
  // Starts what became ready: early starts, then the ready jobs (to the executor, or one quick
  // job on the loop thread). False if this thread no longer runs the loop: return at once.
  bool start_ready(WorkerOutbox& out);
  // Time: fetches to start, data requests that timed out, heartbeat, the scheduler's liveness.
  void tick(std::uint64_t now, WorkerOutbox& out);
  // Last, after the data socket's sends (so refused pushes are known): the held TaskDones that
  // are due and the replicas join this pass's batch for the scheduler.
  void settle(std::uint64_t now, WorkerOutbox& out);

  // ---- queries ----
  // How long the loop may sleep: held TaskDones must leave on time even when nothing happens.
  std::uint64_t poll_timeout_ms() const;
  struct Stop {
    int code = 0;
    std::string reason;  // empty: asked to (WorkerShutdown); else what went wrong, to log
    bool scheduler_gone = false;  // nobody to say goodbye to, nothing worth waiting for
  };
  const std::optional<Stop>& stop() const { return stop_; }
  bool welcomed() const { return welcomed_; }
  bool retiring() const { return retiring_; }
  WorkerId id() const { return me_; }
  // At the goodbye: TaskDones still held back.
  std::vector<protocol::TaskDone> take_held() { return held_.take_all(); }
  bool has_result(TaskId id) const { return store_.contains(id.value); }
  bool is_pending(TaskId id) const { return pending_.count(id.value) != 0; }
  std::size_t n_results() const { return store_.size(); }
  std::size_t n_pending() const { return pending_.size(); }
  const QuickRuns& quick_runs() const { return quick_; }
  const HeldDone& held_done() const { return held_; }
  const DataStore& store() const { return store_; }
  bool paused() const { return paused_; }
  protocol::MemoryReport memory_report() const;

 private:
  // A task the scheduler gave us, until it finishes here.
  struct Pending {
    protocol::ComputeTask msg;
    std::size_t missing = 0;  // inputs still being fetched
    bool submitted = false;   // handed to the executor (or run on the loop), see start_ready
    bool released = false;    // released while it runs: its result is dropped when it completes
    // Inputs here while others are fetched or read back: held so they are not spilled meanwhile.
    std::vector<std::shared_ptr<const Payload>> pinned;
    bool deferred = false;  // in resume_: made ready while paused, its job is made at resume

  };
  // Who waits for a spilled result being read back: tasks (as an input) and data requests.
  struct Restore {
    std::vector<TaskId> tasks;
    std::vector<std::uint64_t> gets;
  };
  // A GetData answered once every item it asks for that was on disk is back.
  struct DeferredGet {
    std::string from;
    protocol::DataReply reply;
    std::size_t missing = 0;
  };
  struct Fetch {
    std::vector<WorkerId> holders;  // still to try
    std::vector<TaskId> waiting;    // tasks that need it
    bool in_flight = false;         // a request for it is out
  };
  struct Request {
    WorkerId peer;
    std::vector<TaskId> deps;
    std::uint64_t sent_ms = 0;
  };

  // scheduler messages: one handler each
  void on(protocol::WorkerWelcome& m, WorkerOutbox& out);
  void on(protocol::Rejected& m, WorkerOutbox& out);
  void on(protocol::PeersChanged& m, WorkerOutbox& out);
  void on(protocol::ComputeTask& m, WorkerOutbox& out);
  void on(protocol::ReleaseTasks& m, WorkerOutbox& out);
  void on(protocol::StealRequest& m, WorkerOutbox& out);
  void on(protocol::Heartbeat& m, WorkerOutbox& out);
  void on(protocol::WorkerShutdown& m, WorkerOutbox& out);
  void on(protocol::FetchReplicas& m, WorkerOutbox& out);   // retire.cpp
  void on(protocol::WorkerMayLeave& m, WorkerOutbox& out);  // retire.cpp
  // A ComputeTask that reached a retiring worker goes back (retire.cpp).
  void give_back(TaskId task, WorkerOutbox& out);

  // Makes the job of a task whose inputs are all here (ready_jobs_), or reports why it cannot run.
  void submit(Pending& p, WorkerOutbox& out);
  // Holds the task's inputs that are in memory here (Pending::pinned) while it waits for the
  // others (from peers, or read back from disk), so they are not spilled meanwhile.
  void pin_inputs_in_memory(Pending& p);
  // Keeps a finished task's result and reports it: at once, or held back (held_done.hpp).
  void store_result(protocol::TaskDone done, std::shared_ptr<const Payload> result, std::uint32_t pushes,
                    bool dependents_waiting, WorkerOutbox& out);
  // Runs a job on the loop thread and notes an overrun (quick_runs.cpp); nullopt: the loop is lost.
  std::optional<Completion> run_on_loop(Job job);
  // Early start (early_start.cpp). start_early: false if the loop was lost. adopt_early: true if
  // the ComputeTask is done with the result of its early start.
  bool start_early(protocol::StartTask& m, const std::string& from, WorkerOutbox& out);
  bool adopt_early(protocol::ComputeTask& m, WorkerOutbox& out);

  // fetching inputs from peers
  void start_fetches(std::uint64_t now, WorkerOutbox& out);
  void on_data(protocol::DataReply& reply, std::uint64_t now, WorkerOutbox& out);
  // Drops the data requests `failed` says will not be answered; their inputs go to the next holder.
  template <class Pred>
  void fail_requests(Pred failed, WorkerOutbox& out);
  void expire_requests(std::uint64_t now, WorkerOutbox& out);
  // `dep`'s holder `peer` did not deliver: the next holder, or FetchFailed for who waits.
  void holder_failed(TaskId dep, WorkerId peer, WorkerOutbox& out);
  void fetch_failed_everywhere(std::uint64_t dep, WorkerOutbox& out);

  // memory (worker_memory.cpp)
  // A result went into the store: spill down to target if it is over (cheap when it is not).
  void after_put(std::uint64_t id, WorkerOutbox& out);
  // Starts writes of results (least recently used first) worth `bytes`.
  void spill(std::uint64_t bytes, WorkerOutbox& out);
  // Asks for `id` (on disk) to be read back: queued, started by pump_restores.
  void restore(std::uint64_t id, WorkerOutbox& out);
  // Starts the queued reads that fit: results in memory, being written and being read stay
  // within target (one read at a time at least while nothing else could free memory).
  void pump_restores(WorkerOutbox& out);
  // `id` is back in memory, or lost (not in memory): the tasks and data requests waiting for it go on.
  void finish_restore(std::uint64_t id, WorkerOutbox& out);
  // Removes a result from the store (and its file).
  void drop_result(std::uint64_t id, WorkerOutbox& out);
  // Each tick: judge_memory on the last sample, pause/resume, the MemoryReport.
  void check_memory(std::uint64_t now, WorkerOutbox& out);
  void set_paused(bool paused, WorkerOutbox& out);
  // Paused: `p` waits for the resume without a job (its inputs may be spilled meanwhile).
  void defer(Pending& p);
  std::uint64_t target_bytes() const;
  // The spill writes out hold too much: results come faster than the disk takes them (pause).
  bool disk_behind() const;
  // How many data requests may be out at once: unlimited without a memory limit; else a few
  // while results in memory are under the spill threshold, one when over.
  std::size_t fetch_budget() const;

  WorkerConfig config_;
  ExecutorPort& exec_;
  PushedResults pushed_;
  HeldDone held_;
  EarlyStarts early_;
  QuickRuns quick_;

  WorkerId me_{};
  bool welcomed_ = false;
  std::uint32_t heartbeat_ms_ = 500;
  std::optional<Stop> stop_;
  DataStore store_;  // results held here, in memory or spilled
  // memory (all idle with memory_limit 0)
  std::uint64_t process_memory_ = 0;
  bool paused_ = false;
  bool disk_full_ = false;           // a spill write failed: paused, retried at disk_retry_at_
  std::uint64_t disk_retry_at_ = 0;
  // When a pause was last logged as a warning: memory pressure warns at most every
  // kPauseWarnEveryMs; other pauses and the rest log at debug (set_paused).
  std::uint64_t pause_warned_at_ = 0;
  bool pause_warned_ = false;
  std::uint64_t now_ = 0;            // the latest time the core was told
  std::unordered_map<std::uint64_t, Restore> restores_;      // result being read back -> who waits
  std::unordered_map<std::uint64_t, DeferredGet> gets_;      // deferred GetData by our own number
  std::uint64_t next_get_ = 1;
  std::deque<std::uint64_t> restore_queue_;  // results to read back, in the order asked
  std::unordered_map<std::uint64_t, protocol::TaskDone> awaiting_disk_;  // bigger than the limit: reported once on disk
  protocol::MemoryReport reported_;  // the last one sent
  // Tasks ready while paused (no job made, so they hold no input in memory): submitted at resume.
  std::vector<TaskId> resume_;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::unordered_map<std::uint64_t, Fetch> fetches_;   // dep -> who waits for it
  std::unordered_map<std::uint32_t, std::string> peers_;  // peer -> its data address
  std::unordered_map<std::uint64_t, Request> requests_;   // GetData out, by request id
  std::uint64_t next_request_ = 1;
  std::vector<Job> ready_jobs_;  // made ready in this pass; start_ready() hands them over
  std::vector<std::pair<protocol::StartTask, std::string>> start_requests_;  // this pass's, and who sent them
  std::vector<TaskId> replicas_;  // fetched results, to announce (ReplicasAdded)
  std::uint64_t freed_since_trim_ = 0;
  std::uint64_t started_ms_ = 0, last_heard_ = 0, last_beat_ = 0;
  bool retiring_ = false;
  bool retire_for_lifetime_ = false;  // its own --lifetime, not a signal or a request: wait for a taker
  std::uint64_t retire_deadline_ = 0;
  std::uint64_t link_down_since_ = 0;  // 0: the connection to the scheduler is up
};

}  // namespace dtask::worker

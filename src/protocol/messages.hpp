// Every message dtask sends: one struct per message, one std::variant per direction.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

// Deliberate: the public codec's Payload (a MessagePack header plus zero-copy frames) is the
// protocol's value type, so a task's arguments and results cross the wire as the bytes the
// user's Codec<T> made, without a copy or a second encoding. Nothing else of the public API is
// used here.
#include <dtask/codec.hpp>

#include "protocol/ids.hpp"

// Lists a message's fields once; the wire codec (wire.hpp) walks them in order as a MessagePack
// array, so adding a field is one edit here plus a protocol version bump.
#define DTASK_FIELDS(...)                                        \
  auto tie() { return std::tie(__VA_ARGS__); }                   \
  auto tie() const { return std::tie(__VA_ARGS__); }

namespace dtask {
// Two payloads are equal when they carry the same bytes: header and each frame's contents, not
// who owns the memory. For the messages' defaulted operator== (tests compare whole messages).
inline bool operator==(const Payload& a, const Payload& b) {
  if (a.header != b.header || a.frames.size() != b.frames.size()) return false;
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    const Buffer &x = a.frames[i], &y = b.frames[i];
    if (x.size() != y.size() || (x.size() != 0 && std::memcmp(x.data(), y.data(), x.size()) != 0)) return false;
  }
  return true;
}
}  // namespace dtask

namespace dtask::protocol {

// Bump on any change to a message below. Peers with another version are refused with a message
// that says which versions met (see wire.hpp: the envelope carries the version).
inline constexpr std::uint32_t kProtocolVersion = 10;
// How long a worker may hold back the TaskDone of a result it pushed (see ComputeTask::push_to).
inline constexpr std::uint64_t kPushedDoneDelayMs = 2;
// How long a client may hold back the SubmitTasks of a task it started early (see StartTask),
// and its releases of keys. Each batch wakes the client's I/O thread, the scheduler and the
// worker beside the next round trip: 5 ms measured faster than 1 or 2 (docs/performance.md,
// session 6). Dask's client batches everything it sends the scheduler for 10 ms.
inline constexpr std::uint64_t kEarlyHoldMs = 5;

using Resources = std::vector<std::pair<std::string, double>>;

// A task argument. Clients name dependencies by key; the scheduler rewrites them to task ids
// before a task reaches a worker.
template <class Ref>
struct ArgT {
  enum Kind : std::uint8_t { value = 0, dep = 1, dep_list = 2 };
  std::uint8_t kind = value;
  Payload data;            // kind == value
  std::vector<Ref> refs;   // kind == dep (one) or dep_list (many)
  DTASK_FIELDS(kind, data, refs)
  bool operator==(const ArgT&) const = default;
};
using ClientArg = ArgT<std::string>;
using TaskArg = ArgT<TaskId>;

struct Rejected {
  std::string reason;
  DTASK_FIELDS(reason)
  bool operator==(const Rejected&) const = default;
};
struct Heartbeat {
  std::uint64_t sent_ms = 0;
  DTASK_FIELDS(sent_ms)
  bool operator==(const Heartbeat&) const = default;
};

// ---- client -> scheduler ------------------------------------------------------------------
struct RegisterClient {
  std::uint32_t version = kProtocolVersion;
  std::string name;
  // The routing id of this client's connections to workers' data servers: workers push small
  // results of `push_result` tasks to it (see ResultPushed).
  std::string data_identity;
  DTASK_FIELDS(version, name, data_identity)
  bool operator==(const RegisterClient&) const = default;
};
struct TaskSpec {
  std::string key;
  std::string func;
  std::vector<ClientArg> args;
  std::int32_t priority = 0;
  std::uint32_t retries = 0;
  std::vector<std::string> workers;  // restrictions by worker name
  bool allow_other_workers = false;
  Resources resources;
  bool wanted = true;                // the client holds a future for it
  // Someone is about to wait for it (a small submit): the worker sends a small result straight
  // to the client as well, one network hop sooner than the scheduler's KeyDone.
  bool push_result = false;
  // The client already asked worker `early_on` to start it (StartTask, nonce `early_nonce`;
  // 0 = not asked): the scheduler places it there if that worker has a free thread, and the
  // worker then uses the result it may already have instead of running it again.
  std::uint64_t early_nonce = 0;
  WorkerId early_on;
  DTASK_FIELDS(key, func, args, priority, retries, workers, allow_other_workers, resources, wanted, push_result,
               early_nonce, early_on)
  bool operator==(const TaskSpec&) const = default;
};
struct SubmitTasks {
  std::vector<TaskSpec> tasks;  // dependencies come before their dependents
  DTASK_FIELDS(tasks)
  bool operator==(const SubmitTasks&) const = default;
};
struct ReleaseKeys {
  std::vector<std::string> keys;
  DTASK_FIELDS(keys)
  bool operator==(const ReleaseKeys&) const = default;
};
struct CancelKeys {
  std::vector<std::string> keys;
  DTASK_FIELDS(keys)
  bool operator==(const CancelKeys&) const = default;
};
// What the client asks for (InfoReply::info's shape for each: docs/dashboard.md):
//   ""/"info": scheduler_info();  "logs": every worker's recent log lines (get_worker_logs);
//   "report": the performance report's data since `since_ms` (scheduler clock, ms since the epoch).
struct InfoRequest {
  std::uint64_t request_id = 0;
  std::string what;
  std::uint64_t since_ms = 0;
  DTASK_FIELDS(request_id, what, since_ms)
  bool operator==(const InfoRequest&) const = default;
};
struct ShutdownCluster {
  std::int32_t code = 0;
  DTASK_FIELDS(code)
  bool operator==(const ShutdownCluster&) const = default;
};
struct ClientGoodbye {
  std::int32_t code = 0;
  DTASK_FIELDS(code)
  bool operator==(const ClientGoodbye&) const = default;
};
// The client got a result straight from the worker that ran it (ResultPushed). Sent only
// along with the client's next message, ahead of it: the scheduler takes it as that task's
// completion, so the worker's own TaskDone (held back, see ComputeTask::push_to) costs no
// message of its own in a submit-result loop.
struct PushReceipt {
  TaskId task;      // meaningless for an early start's result: the worker knew no id yet...
  WorkerId worker;  // who ran and holds it (from ResultPushed); must match the scheduler's view
  std::uint64_t nbytes = 0;
  std::string key;  // ...and this key names it instead (empty for any other result)
  DTASK_FIELDS(task, worker, nbytes, key)
  bool operator==(const PushReceipt&) const = default;
};
struct ResultsReceived {
  std::vector<PushReceipt> receipts;
  DTASK_FIELDS(receipts)
  bool operator==(const ResultsReceived&) const = default;
};
// Scale-down by request (Client::retire_workers, a cluster's scale/adapt): the scheduler tells
// each named live worker PleaseRetire, and each leaves as if signalled (RetireWorker, its unique
// results copied, WorkerMayLeave). Unknown or already leaving names are ignored; the client
// watches scheduler_info() until the names are gone.
struct RetireWorkers {
  std::vector<std::string> names;
  DTASK_FIELDS(names)
  bool operator==(const RetireWorkers&) const = default;
};
using ClientToScheduler = std::variant<RegisterClient, SubmitTasks, ReleaseKeys, CancelKeys, InfoRequest,
                                       Heartbeat, ShutdownCluster, ClientGoodbye, ResultsReceived, RetireWorkers>;

// ---- scheduler -> client ------------------------------------------------------------------
struct ClientWelcome {
  std::uint32_t version = kProtocolVersion;
  ClientId client;
  std::string dashboard_link;  // the dashboard's URL with its token; empty: none served
  DTASK_FIELDS(version, client, dashboard_link)
  bool operator==(const ClientWelcome&) const = default;
};
struct KeyDone {
  std::string key;
  TaskId task;
  std::vector<std::string> holders;  // peer-data endpoints of workers holding the result
  std::uint64_t nbytes = 0;
  bool has_data = false;             // small results come inline
  Payload data;
  DTASK_FIELDS(key, task, holders, nbytes, has_data, data)
  bool operator==(const KeyDone&) const = default;
};
struct KeyErred {
  std::string key;
  std::string func;
  std::string message;
  DTASK_FIELDS(key, func, message)
  bool operator==(const KeyErred&) const = default;
};
struct KeyCancelled {
  std::string key;
  std::string reason;
  DTASK_FIELDS(key, reason)
  bool operator==(const KeyCancelled&) const = default;
};
// A finished key's only copies were lost with a worker; it is being recomputed.
struct KeyLost {
  std::string key;
  DTASK_FIELDS(key)
  bool operator==(const KeyLost&) const = default;
};
struct InfoReply {
  std::uint64_t request_id = 0;
  nlohmann::json info;
  DTASK_FIELDS(request_id, info)
  bool operator==(const InfoReply&) const = default;
};
struct ClusterClosing {
  std::int32_t code = 0;
  std::string reason;
  DTASK_FIELDS(code, reason)
  bool operator==(const ClusterClosing&) const = default;
};
using SchedulerToClient = std::variant<ClientWelcome, Rejected, KeyDone, KeyErred, KeyCancelled, KeyLost,
                                       InfoReply, Heartbeat, ClusterClosing>;

// ---- worker -> scheduler ------------------------------------------------------------------
// What a worker's supervisor saw of its previous incarnation (the same name) when it started
// this one: the scheduler learns of the death at once, with its cause, and which tasks were
// actually running then (only those are suspected of killing it; queued ones just move).
struct PreviousExit {
  bool died = false;            // false: a first start
  std::string reason;           // e.g. "killed by signal 11 (SIGSEGV)", "exited with code 3"
  std::vector<TaskId> running;  // tasks its executor was running when it died
  DTASK_FIELDS(died, reason, running)
  bool operator==(const PreviousExit&) const = default;
};
struct RegisterWorker {
  std::uint32_t version = kProtocolVersion;
  std::string name;
  std::string host;
  std::string address;  // peer-data endpoint
  std::uint32_t nthreads = 1;
  std::int32_t rank = -1;
  std::uint64_t memory_limit = 0;
  Resources resources;
  std::int64_t pid = 0;
  PreviousExit previous;
  DTASK_FIELDS(version, name, host, address, nthreads, rank, memory_limit, resources, pid, previous)
  bool operator==(const RegisterWorker&) const = default;
};
struct TaskDone {
  TaskId task;
  std::uint64_t nbytes = 0;
  // Small results ride along, so a client waiting for one needs no extra fetch round trip.
  bool has_data = false;
  Payload data;
  DTASK_FIELDS(task, nbytes, has_data, data)
  bool operator==(const TaskDone&) const = default;
};
struct TaskFailed {
  TaskId task;
  std::string message;
  DTASK_FIELDS(task, message)
  bool operator==(const TaskFailed&) const = default;
};
struct ReplicasAdded {
  std::vector<TaskId> tasks;
  DTASK_FIELDS(tasks)
  bool operator==(const ReplicasAdded&) const = default;
};
struct StealReply {
  TaskId task;
  bool stolen = false;
  DTASK_FIELDS(task, stolen)
  bool operator==(const StealReply&) const = default;
};
// The worker could not fetch `dep` for `task` from any holder it was told about.
struct FetchFailed {
  TaskId task;
  TaskId dep;
  DTASK_FIELDS(task, dep)
  bool operator==(const FetchFailed&) const = default;
};
struct WorkerGoodbye {
  std::int32_t code = 0;
  DTASK_FIELDS(code)
  bool operator==(const WorkerGoodbye&) const = default;
};
// The worker is leaving on its own (SIGTERM, Worker::retire): it takes no new work, finishes what
// runs, keeps serving its results until the scheduler has copied the ones only it holds
// (FetchReplicas to other workers), then hears WorkerMayLeave and says goodbye. `returned` are
// tasks it was given but had not started: the scheduler places them elsewhere. Sent again, with
// more returned tasks, for ComputeTasks that reach it after it began retiring.
struct RetireWorker {
  std::vector<TaskId> returned;
  // --lifetime: its replacement is on the way, so results no other worker can take now wait for
  // one (up to the worker's drain timeout) instead of leaving with it (dask-jobqueue#691).
  bool wait_for_taker = false;
  DTASK_FIELDS(returned, wait_for_taker)
  bool operator==(const RetireWorker&) const = default;
};
// A worker's memory (worker/worker_memory.cpp): sent when it changed noticeably (at most with each
// heartbeat) and at once when the worker pauses or resumes. The scheduler keeps the last one per
// worker for scheduler_info() and placement: a paused worker gets no new task, and work goes
// where it does not force a spill.
struct MemoryReport {
  std::uint64_t held = 0;     // bytes of results in memory
  std::uint64_t spilled = 0;  // bytes of results on disk (as stored: compressed if they were)
  std::uint64_t spilled_count = 0;  // how many results are on disk
  std::uint64_t process = 0;  // the process's resident memory; 0: not measured (threads in one process)
  std::uint64_t limit = 0;    // memory_limit; 0: none
  bool paused = false;        // above the pause threshold (or the disk is full): starts no new task
  DTASK_FIELDS(held, spilled, spilled_count, process, limit, paused)
  bool operator==(const MemoryReport&) const = default;
};
// ---- telemetry (issue 16: dashboard, report, worker logs; docs/dashboard.md) ----
// Times are the worker's wall clock in microseconds since the Unix epoch, so the scheduler can
// put every worker's runs on one timeline (cluster nodes keep their clocks in step).
struct TaskRun {  // one task that ran here (the task stream)
  TaskId task;
  std::string func;
  std::uint64_t start_us = 0;
  std::uint64_t stop_us = 0;
  std::uint32_t thread = 0;  // which of the worker's threads ran it (0-based)
  bool erred = false;
  DTASK_FIELDS(task, func, start_us, stop_us, thread, erred)
  bool operator==(const TaskRun&) const = default;
};
struct FuncTotals {  // every task of one function that finished here since the last Telemetry
  std::string func;
  std::uint64_t count = 0;     // finished (erred included)
  std::uint64_t erred = 0;
  std::uint64_t total_us = 0;  // summed run time
  std::uint64_t max_us = 0;
  DTASK_FIELDS(func, count, erred, total_us, max_us)
  bool operator==(const FuncTotals&) const = default;
};
struct TransferTotals {  // inputs this worker fetched from one peer since the last Telemetry
  std::string peer;  // the peer's data address
  std::uint64_t count = 0;  // results fetched
  std::uint64_t bytes = 0;
  std::uint64_t total_us = 0;  // summed request-to-reply time
  DTASK_FIELDS(peer, count, bytes, total_us)
  bool operator==(const TransferTotals&) const = default;
};
struct LogLine {
  std::uint64_t time_us = 0;
  std::string level;  // spdlog's name: "info", "warning", "error", ...
  std::string text;   // the message, without the time/level prefix
  DTASK_FIELDS(time_us, level, text)
  bool operator==(const LogLine&) const = default;
};
// Sent with the heartbeat when anything happened since the last one (worker/telemetry.hpp).
// `runs` is bounded per message (the stream is a sample when tasks are dense: runs_dropped says
// how many were left out); `totals` always counts every task exactly.
struct Telemetry {
  std::vector<TaskRun> runs;
  std::uint64_t runs_dropped = 0;
  std::vector<FuncTotals> totals;
  std::vector<TransferTotals> transfers;
  std::vector<LogLine> log;    // new lines at info and above since the last Telemetry
  std::uint64_t busy_us = 0;   // thread-time spent running tasks since the last Telemetry
  DTASK_FIELDS(runs, runs_dropped, totals, transfers, log, busy_us)
  bool operator==(const Telemetry&) const = default;
};
using WorkerToScheduler = std::variant<RegisterWorker, TaskDone, TaskFailed, ReplicasAdded, StealReply,
                                       FetchFailed, Heartbeat, WorkerGoodbye, RetireWorker, MemoryReport,
                                       Telemetry>;

// ---- scheduler -> worker ------------------------------------------------------------------
struct Peer {
  WorkerId id;
  std::string address;
  DTASK_FIELDS(id, address)
  bool operator==(const Peer&) const = default;
};
struct WorkerWelcome {
  std::uint32_t version = kProtocolVersion;
  WorkerId worker;
  std::vector<Peer> peers;  // reserved; peers are learnt from ComputeTask's DepLocations
  std::uint32_t heartbeat_ms = 500;
  DTASK_FIELDS(version, worker, peers, heartbeat_ms)
  bool operator==(const WorkerWelcome&) const = default;
};
struct PeersChanged {
  std::vector<Peer> joined;
  std::vector<WorkerId> left;
  DTASK_FIELDS(joined, left)
  bool operator==(const PeersChanged&) const = default;
};
// Where an input lives. Addresses travel with the task, so workers need no peer directory
// broadcast (which would cost O(workers^2) messages while a big cluster registers).
struct DepLocation {
  TaskId task;
  std::vector<WorkerId> holders;
  std::vector<std::string> addresses;  // parallel to holders
  DTASK_FIELDS(task, holders, addresses)
  bool operator==(const DepLocation&) const = default;
};
struct ComputeTask {
  TaskId task;
  std::string key;
  std::string func;
  std::vector<TaskArg> args;
  std::vector<DepLocation> deps;
  Resources resources;
  std::int32_t priority = 0;
  // Clients' data identities to send a small result to directly (ResultPushed); usually empty.
  // Once a push went through, the worker holds its TaskDone back for up to
  // kPushedDoneDelayMs (it leaves sooner with any other message): the client's receipt
  // usually tells the scheduler first, and a release of the task then cancels it...
  std::vector<std::string> push_to;
  // ...unless other tasks already wait for this result: then TaskDone goes at once, or each
  // level of a small graph whose outputs are all wanted would wait that long.
  bool dependents_waiting = false;
  // The client's StartTask for this task, if it sent one here (TaskSpec::early_nonce).
  std::uint64_t early_nonce = 0;
  DTASK_FIELDS(task, key, func, args, deps, resources, priority, push_to, dependents_waiting, early_nonce)
  bool operator==(const ComputeTask&) const = default;
};
struct ReleaseTasks {
  std::vector<TaskId> tasks;
  DTASK_FIELDS(tasks)
  bool operator==(const ReleaseTasks&) const = default;
};
struct StealRequest {
  TaskId task;
  DTASK_FIELDS(task)
  bool operator==(const StealRequest&) const = default;
};
struct WorkerShutdown {
  std::int32_t code = 0;
  DTASK_FIELDS(code)
  bool operator==(const WorkerShutdown&) const = default;
};
// Copy these results from worker `from` (retiring; its data server is at `address`) and keep
// them: the recipient fetches them as it fetches inputs and answers ReplicasAdded.
struct FetchReplicas {
  WorkerId from;
  std::string address;
  std::vector<TaskId> tasks;
  DTASK_FIELDS(from, address, tasks)
  bool operator==(const FetchReplicas&) const = default;
};
// To a retiring worker: nothing holds only here any more (or nowhere else could take it); say
// goodbye and go.
struct WorkerMayLeave {
  std::uint32_t handed_over = 0;  // results copied to other workers, for its log
  DTASK_FIELDS(handed_over)
  bool operator==(const WorkerMayLeave&) const = default;
};
// To a worker a client wants gone (RetireWorkers): start the drain, exactly as SIGTERM would
// (WorkerState::retire). A worker already retiring ignores it.
struct PleaseRetire {
  std::string reason;  // for its log, e.g. "asked by client 3"
  DTASK_FIELDS(reason)
  bool operator==(const PleaseRetire&) const = default;
};
using SchedulerToWorker = std::variant<WorkerWelcome, Rejected, PeersChanged, ComputeTask, ReleaseTasks,
                                       StealRequest, Heartbeat, WorkerShutdown, FetchReplicas, WorkerMayLeave,
                                       PleaseRetire>;

// ---- peer data (worker or client -> a worker's data server) --------------------------------
struct GetData {
  std::uint64_t request_id = 0;
  std::vector<TaskId> tasks;
  DTASK_FIELDS(request_id, tasks)
  bool operator==(const GetData&) const = default;
};
struct DataItem {
  TaskId task;
  bool found = false;
  Payload data;
  DTASK_FIELDS(task, found, data)
  bool operator==(const DataItem&) const = default;
};
struct DataReply {
  std::uint64_t request_id = 0;
  std::vector<DataItem> items;
  DTASK_FIELDS(request_id, items)
  bool operator==(const DataReply&) const = default;
};
// Worker -> client, unasked: a small result of a task the client is waiting for. The client
// reports it to the scheduler with its next message (ResultsReceived); the worker's TaskDone
// follows a little later regardless, and the scheduler's KeyDone is the fallback for a push
// that was lost (a push to a client that is not connected yet is dropped by ZeroMQ).
struct ResultPushed {
  TaskId task;
  std::string key;
  Payload data;
  WorkerId worker;  // the sender, for the client's receipt
  bool early = false;  // the result of a StartTask: `task` is not known yet (see PushReceipt)
  DTASK_FIELDS(task, key, data, worker, early)
  bool operator==(const ResultPushed&) const = default;
};
// Client -> worker, for a tiny task without inputs that the client is about to wait for: start
// it now, if nothing else runs here, and send the result back (ResultPushed, early) on the
// connection this came on; `reply_to` is the client's data identity (as in
// ComputeTask::push_to). The same task also goes to the scheduler as usual
// (TaskSpec::early_nonce), which stays in charge: its ComputeTask decides where the task
// lives, and a worker that did not start it early simply runs it then. The client sends that
// SubmitTasks a little later (at most kEarlyHoldMs), followed by its receipt if the result is
// back by then, so a submit-result loop costs two network hops per round trip instead of
// three, and the scheduler takes its part in batches.
struct StartTask {
  std::uint64_t nonce = 0;
  std::string key;
  std::string func;
  std::vector<Payload> args;
  std::string reply_to;
  DTASK_FIELDS(nonce, key, func, args, reply_to)
  bool operator==(const StartTask&) const = default;
};
// Worker -> client: a StartTask it did not take (busy, or the function is not known to be
// quick), so the client tells the scheduler about that task now instead of a little later.
struct NotStarted {
  std::string key;
  DTASK_FIELDS(key)
  bool operator==(const NotStarted&) const = default;
};
using PeerRequest = std::variant<GetData, StartTask>;
using PeerReply = std::variant<DataReply, Rejected, ResultPushed, NotStarted>;

// Envelope direction tags: which variant the messages of a frame decode as.
enum class Direction : char {
  client_to_scheduler = 'C',
  scheduler_to_client = 'c',
  worker_to_scheduler = 'W',
  scheduler_to_worker = 'w',
  peer_request = 'P',
  peer_reply = 'p',
};

template <class V>
struct direction_of;
template <>
struct direction_of<ClientToScheduler> : std::integral_constant<Direction, Direction::client_to_scheduler> {};
template <>
struct direction_of<SchedulerToClient> : std::integral_constant<Direction, Direction::scheduler_to_client> {};
template <>
struct direction_of<WorkerToScheduler> : std::integral_constant<Direction, Direction::worker_to_scheduler> {};
template <>
struct direction_of<SchedulerToWorker> : std::integral_constant<Direction, Direction::scheduler_to_worker> {};
template <>
struct direction_of<PeerRequest> : std::integral_constant<Direction, Direction::peer_request> {};
template <>
struct direction_of<PeerReply> : std::integral_constant<Direction, Direction::peer_reply> {};

}  // namespace dtask::protocol

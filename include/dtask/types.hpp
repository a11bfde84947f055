// Plain value types shared by the public API: options, cluster information, security keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dtask {

// ZeroMQ CURVE keys (Z85 text). The scheduler and worker data servers are CURVE servers with
// the server pair; every connecting socket uses the client pair, and servers accept only the
// client public key, so the client secret is the job's secret.
struct Security {
  bool enabled = false;
  std::string server_public, server_secret;
  std::string client_public, client_secret;

  static Security generate();  // fresh keys, enabled
  static Security none() { return {}; }
};

// One live worker as the scheduler sees it (Client::scheduler_info).
struct WorkerInfo {
  std::uint32_t id = 0;
  std::string name;
  std::string host;
  std::string address;  // its peer-data endpoint
  int nthreads = 1;
  int rank = -1;        // MPI rank, -1 outside MPI
  long pid = 0;
  std::uint64_t memory_limit = 0;
  std::map<std::string, double> resources;
  std::size_t processing = 0;  // tasks placed on it and not finished
  std::size_t in_memory = 0;   // results it holds
  std::uint64_t nbytes = 0;    // bytes of those results
  bool retiring = false;       // leaving (retire_workers, SIGTERM, --lifetime): takes no new work
  std::uint64_t idle_ms = 0;   // how long it has had nothing processing (0: busy); scheduler-tick granularity
  // Its last memory report (issue 15; worker/memory_policy.hpp): bytes of results in memory and
  // on disk, how many results are on disk, the process's resident bytes (0: not measured), and
  // whether it is paused (above the pause threshold, or its disk is full: it starts no new task).
  std::uint64_t memory_held = 0;
  std::uint64_t memory_spilled = 0;
  std::uint64_t spilled_count = 0;
  std::uint64_t memory_process = 0;
  bool paused = false;
};

// The scheduler's view of the cluster (Client::scheduler_info), taken when it answered.
struct SchedulerInfo {
  std::string address;              // the scheduler this client is connected to
  std::vector<WorkerInfo> workers;  // the live ones
  std::map<std::string, std::size_t> tasks_by_state;  // "waiting", "processing", "memory", ...
  std::size_t n_tasks = 0;  // keys it holds in any state: 0 once every future was released
  // How often the fast paths reached it (FastPaths; docs/architecture.md): results it heard of
  // from a client's receipt rather than the worker's TaskDone, and tasks it placed on the worker
  // a client had started them on early. Timing decides these, so they are for reports, not for
  // assertions.
  std::uint64_t completions_reported_by_clients = 0;
  std::uint64_t placed_where_started_early = 0;
  // How many times a worker reported that it paused (memory above its pause threshold).
  std::uint64_t worker_pauses = 0;
};

// The latency shortcuts between client, scheduler and worker (docs/architecture.md, "Fast
// paths"). Each is one named unit beside its role's core; none changes a result, only how many
// hops and thread hand-offs one takes. All are on by default; `none()` turns every one off (the
// test suite passes both ways), and the benchmark measures what each is worth.
struct FastPaths {
  bool push_results = true;  // a worker pushes a small result straight to the waiting client
  bool hold_task_done = true;  // ...and holds its TaskDone back for that client's receipt
  bool early_start = true;   // a one-task submit starts at once on a worker that pushed results (in turns)
  bool run_on_loop = true;   // a worker runs a quick task on its event loop thread
  bool spin_wait = true;     // a client thread waiting for one result spins briefly first

  static FastPaths all() { return {}; }
  static FastPaths none() { return {false, false, false, false, false}; }
  // "all", "none", or a comma-separated list of the names above, each optionally prefixed with
  // '-' (off) or '+' (on), applied to "all" (e.g. "-early_start,-run_on_loop"); throws
  // std::invalid_argument naming what it did not understand.
  static FastPaths parse(const std::string& spec);
  // The environment's choice: DTASK_FAST_PATHS parsed as above, all when unset. Throws like
  // parse() for a bad value.
  static FastPaths from_environment();
  std::string to_string() const;  // "all", "none" or the list of those switched off
  bool operator==(const FastPaths&) const = default;
};

// What a client needs to reach a scheduler (also what a scheduler file holds).
struct ConnectOptions {
  std::string address;
  Security security;
  std::string name = "client";
  std::chrono::milliseconds connect_timeout{30000};
  // A scheduler silent for this long is considered gone: pending futures fail instead of hanging.
  std::chrono::milliseconds scheduler_timeout{15000};
  FastPaths fast_paths = FastPaths::from_environment();
};

// The `workers=`, `resources=`, `priority`, `retries` and `key` words of Dask's submit.
struct SubmitOptions {
  std::optional<std::string> key;
  std::vector<std::string> workers;  // worker names (MPI: the rank as text)
  bool allow_other_workers = false;
  std::map<std::string, double> resources;
  int priority = 0;
  int retries = 0;
};

// How dtask::progress draws (dtask/progress.hpp). Every field has a default, so
// `ProgressOptions{.interval = std::chrono::seconds(30)}` names only what it changes.
struct ProgressOptions {
  std::FILE* out = stdout;  // where it draws (Dask draws on stdout too)
  // A terminal gets one bar redrawn in place with '\r'; anything else (a batch job's log file, a
  // pipe) gets plain lines, one every `interval`, and no '\r' or escape sequence. nullopt: decided
  // by isatty() on `out`; true or false forces the style.
  std::optional<bool> terminal = std::nullopt;
  std::chrono::milliseconds interval = std::chrono::seconds(10);  // plain lines' period (at least 100 ms)
  std::size_t width = 40;  // cells of the bar (0: no bar); a terminal narrower than the line shrinks it
};

// The options of Client::compute. `ComputeOptions{.progress = true}` shows a progress bar.
struct ComputeOptions {
  bool progress = false;  // draw dtask::progress over the outputs while they run
  ProgressOptions progress_options = {};
};

// One line of a worker's log (Client::get_worker_logs): what it logged at info level and above,
// whatever its console's level.
struct LogRecord {
  std::chrono::system_clock::time_point time = {};  // the worker's clock
  std::string level = {};    // spdlog's name: "info", "warning", "error", "critical"
  std::string message = {};  // the text, without the time and level prefix
};

// One worker name's recent log lines (Client::get_worker_logs), kept by the scheduler also after
// the worker died or left.
struct WorkerLogs {
  bool alive = false;  // a worker of this name is connected now
  std::string host = {};
  std::vector<LogRecord> lines = {};  // oldest first
};

enum class FutureStatus { pending, finished, error, cancelled };

// A task's failure as the client sees it: the task's name, its key, and the message it threw.
class TaskError : public std::runtime_error {
 public:
  TaskError(std::string key, std::string task, std::string message)
      : std::runtime_error("task '" + task + "' (key " + key + ") failed: " + message),
        key_(std::move(key)), task_(std::move(task)), message_(std::move(message)) {}
  const std::string& key() const { return key_; }
  const std::string& task() const { return task_; }
  const std::string& message() const { return message_; }

 private:
  std::string key_, task_, message_;
};

class CancelledError : public std::runtime_error {
 public:
  explicit CancelledError(const std::string& key) : std::runtime_error("future " + key + " was cancelled") {}
};

class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The cluster is unreachable or went away (scheduler died, connection refused, bad keys).
class ConnectionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace dtask

// The scheduler's record of what happened, for the dashboard, /metrics, the job report and the
// workers' logs: task runs, per-name totals, errors, throughput, workers past and present.
#pragma once

#include <cstdint>
#include <utility>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/messages.hpp"

namespace dtask::scheduler {

// Pure, owned by SchedulerState (the scheduler's loop thread): fed by its handlers, read when the
// loop publishes a snapshot or a client asks for a report or the logs. Every store is bounded, so
// a week-long job does not grow the scheduler (the bounds are in docs/dashboard.md).
class Observatory {
 public:
  static constexpr std::size_t kMaxRuns = 100'000;        // task stream kept for the report
  static constexpr std::size_t kMaxErrors = 1'000;
  static constexpr std::size_t kSnapshotErrors = 50;
  static constexpr std::size_t kSnapshotRuns = 800;
  static constexpr std::uint64_t kSnapshotStreamMs = 10'000;
  static constexpr std::uint64_t kThroughputWindowMs = 5 * 60'000;  // in the snapshot
  static constexpr std::size_t kMaxThroughputPoints = 20'000;       // kept for the report
  static constexpr std::size_t kMaxLogLines = 1'000;                // per worker name
  static constexpr std::size_t kMaxGoneWorkers = 256;               // names kept after they left

  struct Run {
    std::uint32_t worker = 0;  // index into workers_
    std::uint32_t thread = 0;
    std::uint32_t name = 0;    // index into names_
    std::string key;
    double start_ms = 0, stop_ms = 0;
    bool erred = false;
  };
  struct Error {
    std::uint64_t time_ms = 0;
    std::string name, key, worker, message;
  };
  struct WorkerSeen {
    std::string name, host;
    int nthreads = 1;
    std::uint64_t first_seen_ms = 0, last_seen_ms = 0;
    bool alive = true;
    std::uint64_t tasks_done = 0;  // as the worker counted them (its telemetry)
    std::uint64_t busy_us = 0;
    std::deque<protocol::LogLine> log;
  };
  struct NameTotals {  // the workers' view (telemetry): a task run twice counts twice
    std::uint64_t runs = 0, erred_runs = 0;
    std::uint64_t total_us = 0, max_us = 0;
  };
  struct Transfer {
    std::uint64_t count = 0, bytes = 0, total_us = 0;
  };

  // Every `now_ms` given to it is the scheduler's clock (steady, transport::now_ms()); the
  // stores and JSON use the wall clock (workers' runs are wall-clock times): wall = now + offset.
  // The server sets the offset once at start; tests leave it 0.
  void set_wall_offset(std::int64_t offset_ms) { wall_offset_ms_ = offset_ms; }
  void set_started(std::uint64_t now_ms) { started_ms_ = wall(now_ms); }
  std::uint64_t started_ms() const { return started_ms_; }
  std::uint64_t wall(std::uint64_t now_ms) const { return static_cast<std::uint64_t>(static_cast<std::int64_t>(now_ms) + wall_offset_ms_); }

  // The scheduler's own counts per task name, in order of first submission: finished (entered
  // memory), failed (erred, cancellations aside); cumulative.
  struct Progress {
    std::string name;
    std::uint64_t done = 0, erred = 0;
  };

  // ---- workers ----
  void worker_joined(const std::string& name, const std::string& host, int nthreads, std::uint64_t now_ms);
  // `how`: "left" (goodbye) or "died: <reason>"; added to its log as the scheduler's line.
  void worker_gone(const std::string& name, const std::string& how, std::uint64_t now_ms);

  // ---- what happened ----
  // A worker's Telemetry; `key_of` names a task id (empty when the scheduler forgot it already).
  void on_telemetry(const std::string& worker, const protocol::Telemetry& t,
                    const std::function<std::string(protocol::TaskId)>& key_of, std::uint64_t now_ms);
  // A task's own failure (not its dependents', not a cancellation).
  void on_error(const std::string& name, const std::string& key, const std::string& worker, const std::string& message,
                std::uint64_t now_ms);
  // One throughput point: tasks finished (`finished_total`, cumulative) since the last sample,
  // over the time since it.
  void sample_throughput(std::uint64_t now_ms, std::uint64_t finished_total);

  // ---- reading ----
  // The snapshot's observatory parts (task_stream, throughput, errors, totals; the workers'
  // tasks_done and busy_s; docs/dashboard.md). `snap` already holds the scheduler's parts.
  void fill_snapshot(nlohmann::json& snap, const std::vector<Progress>& progress, std::uint64_t now_ms) const;
  // The report JSON (docs/dashboard.md) with everything kept since since_ms (wall clock);
  // `scheduler` is the snapshot's scheduler object.
  nlohmann::json report(std::uint64_t now_ms, std::uint64_t since_ms, const nlohmann::json& scheduler,
                        const std::vector<Progress>& progress) const;
  // {"workers": {name: {"alive", "host", "lines": [...]}}}, the last `n` lines of each.
  nlohmann::json logs(std::size_t n) const;

 private:
  WorkerSeen& seen(const std::string& name);
  std::uint32_t name_index(const std::string& name);
  nlohmann::json run_json(const Run& r) const;

  std::int64_t wall_offset_ms_ = 0;
  std::uint64_t started_ms_ = 0;
  std::vector<WorkerSeen> workers_;
  std::unordered_map<std::string, std::uint32_t> worker_index_;
  std::deque<std::uint32_t> gone_order_;  // names that left, oldest first (bounded)
  std::vector<std::string> names_;  // task names in the stream
  std::unordered_map<std::string, std::uint32_t> name_index_;
  std::unordered_map<std::string, NameTotals> by_name_;
  std::map<std::pair<std::string, std::string>, Transfer> transfers_;  // (worker, peer)
  std::deque<Run> runs_;
  std::uint64_t runs_dropped_ = 0;
  std::deque<Error> errors_;
  std::deque<std::pair<std::uint64_t, double>> throughput_;
  std::uint64_t sampled_finished_ = 0, sampled_ms_ = 0;  // wall clock
  std::uint64_t task_us_total_ = 0, transfers_total_ = 0, transfer_bytes_total_ = 0;
};

}  // namespace dtask::scheduler

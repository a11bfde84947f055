// What a worker tells the scheduler for the dashboard and the report: its task runs, per-function
// totals, fetches from peers and new log lines, gathered between heartbeats (protocol::Telemetry).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "protocol/messages.hpp"

namespace dtask::worker {

// Thread-safe: executor threads and the loop thread record, the loop thread drains with each
// heartbeat. One mutex guards everything (a record is a few stores; contention is one lock per task).
class TelemetryRecorder {
 public:
  // At most this many runs go in one Telemetry; the rest only count (runs_dropped) and in totals.
  // Which runs: a uniform random sample of those since the last drain (reservoir sampling), so
  // a dense stream shows runs spread over the whole interval, not only its first or last moments.
  static constexpr std::size_t kMaxRunsPerMessage = 1000;
  explicit TelemetryRecorder(std::shared_ptr<log::LogTap> tap = nullptr);

  // A task finished (or threw) on `thread`; times: wall clock, microseconds since the epoch.
  void record_run(protocol::TaskId task, const std::string& func, std::uint64_t start_us, std::uint64_t stop_us,
                  std::uint32_t thread, bool erred);
  // An input fetched from the peer at `peer_address`: `count` results, `bytes`, request-to-reply time.
  void record_fetch(const std::string& peer_address, std::uint64_t count, std::uint64_t bytes, std::uint64_t micros);
  // Everything since the last drain, plus the tap's new lines; nullopt when nothing happened.
  std::optional<protocol::Telemetry> drain();

 private:
  std::mutex mu_;
  // A uniform sample (reservoir) of the runs since the last drain, at most kMaxRunsPerMessage.
  std::vector<protocol::TaskRun> runs_;
  std::uint64_t runs_dropped_ = 0;
  std::uint64_t runs_seen_ = 0;    // since the last drain: kept + dropped
  std::uint64_t rng_ = 0x9E3779B97F4A7C15ull;  // the reservoir's xorshift state
  std::map<std::string, protocol::FuncTotals> totals_;
  protocol::FuncTotals* last_totals_ = nullptr;  // the last function's entry (tasks come in runs of one function)
  std::map<std::string, protocol::TransferTotals> transfers_;
  std::uint64_t busy_us_ = 0;
  std::shared_ptr<log::LogTap> tap_;
};

// Wall clock, microseconds since the Unix epoch.
std::uint64_t wall_us();

}  // namespace dtask::worker

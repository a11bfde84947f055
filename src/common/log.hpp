// One spdlog logger per role, named with its rank/host so interleaved job output stays readable.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

namespace dtask::log {

// role: "scheduler", "worker", "client", "runner"; where: e.g. "rank2@node1" or a worker name.
std::shared_ptr<spdlog::logger> make(const std::string& role, const std::string& where);
// "trace".."critical","off"; applies to every dtask logger, existing and future. Default: warn.
void set_level(const std::string& level);
// Validates a level name (for CLI input).
bool valid_level(const std::string& level);
// Where no set_level() was called, the level comes from the environment: DTASK_LOG_LEVEL, else
// SPDLOG_LEVEL, else warn. SPDLOG_LEVEL follows spdlog's convention ("info", or a list such as
// "debug,worker=info"): the last bare level in it counts; logger=level parts and unknown words are
// ignored. nullopt when it names no level.
std::optional<std::string> level_from_spdlog_env(std::string_view value);
// A logger's name: role, then `where` tagged with the host ("worker w0@node1", "scheduler@node1")
// unless `where` already names one ("runner rank2@node1").
std::string logger_name(const std::string& role, const std::string& where, const std::string& host);

// Lines a logger wrote at `info` and above, whatever its console level, kept for
// Client::get_worker_logs (docs/dashboard.md, "Worker logs"). A spdlog sink: attach() adds it to a
// logger and lowers that logger's level to info while the console sink keeps the chosen level.
// Thread-safe (any thread logs; the worker's loop takes the new lines).
class LogTap {
 public:
  struct Line {
    std::uint64_t time_us = 0;  // wall clock, microseconds since the epoch
    std::string level;          // "info", "warning", "error", "critical"
    std::string text;
  };
  static constexpr std::size_t kMaxPending = 1000;  // older untaken lines are dropped
  // Adds a tap to `logger` (made by make()) and returns it.
  static std::shared_ptr<LogTap> attach(const std::shared_ptr<spdlog::logger>& logger);
  // The lines written since the last call (at most kMaxPending, the newest).
  std::vector<Line> take();
  void add(Line line);  // for the sink

 private:
  std::mutex mu_;
  std::deque<Line> pending_;
};

}  // namespace dtask::log

// One spdlog logger per role, named with its rank/host so interleaved job output stays readable.
//
// Levels: every logger made here has its console sink at the chosen level (g_level). A logger with
// a LogTap is itself at min(g_level, info) so the tap sees info lines the console does not print;
// the console sink filters them. set_level() updates every live logger made here (a weak registry
// under g_mutex), so what the console prints changes for existing and future loggers alike.
#include "common/log.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/host.hpp"

namespace dtask::log {

namespace {

// The tap's sink: hands each line (info and above) to its LogTap.
class TapSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit TapSink(std::shared_ptr<LogTap> tap) : tap_(std::move(tap)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto lv = spdlog::level::to_string_view(msg.level);
    tap_->add(LogTap::Line{
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(msg.time.time_since_epoch()).count()),
        std::string(lv.data(), lv.size()), std::string(msg.payload.data(), msg.payload.size())});
  }
  void flush_() override {}

 private:
  std::shared_ptr<LogTap> tap_;  // LogTap has its own mutex: this sink needs none
};

struct Made {
  std::weak_ptr<spdlog::logger> logger;
  std::weak_ptr<spdlog::sinks::sink> console;
  bool tapped = false;
};

std::mutex g_mutex;  // guards everything below
spdlog::level::level_enum g_level = spdlog::level::warn;
bool g_level_chosen = false;  // set_level() was called, or the environment was read
std::vector<Made> g_made;     // the loggers made here, to apply set_level() to

spdlog::level::level_enum parse(const std::string& level) {
  return spdlog::level::from_str(level == "warning" ? "warn" : level);
}

spdlog::level::level_enum current_level() {
  if (!g_level_chosen) {
    g_level_chosen = true;
    const char* dtask_env = std::getenv("DTASK_LOG_LEVEL");
    const char* spd_env = std::getenv("SPDLOG_LEVEL");
    if (dtask_env && valid_level(dtask_env)) {
      g_level = parse(dtask_env);
    } else if (spd_env) {
      if (auto l = level_from_spdlog_env(spd_env)) g_level = parse(*l);
    }
  }
  return g_level;
}

// A tapped logger must let info through to its tap; it never goes below info for it (debug and
// trace calls stay a level test).
spdlog::level::level_enum logger_level(spdlog::level::level_enum console, bool tapped) {
  return tapped ? std::min(console, spdlog::level::info) : console;
}

void apply(const Made& m, spdlog::level::level_enum level) {
  auto logger = m.logger.lock();
  if (!logger) return;
  if (auto console = m.console.lock()) console->set_level(level);
  logger->set_level(logger_level(level, m.tapped));
}

std::string lower_trimmed(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

bool valid_level(const std::string& level) {
  static const char* names[] = {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"};
  for (const char* n : names) {
    if (level == n) return true;
  }
  return false;
}

std::optional<std::string> level_from_spdlog_env(std::string_view value) {
  std::optional<std::string> found;
  while (!value.empty()) {
    const auto comma = value.find(',');
    const std::string part = lower_trimmed(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    if (part.find('=') != std::string::npos) continue;  // logger=level: dtask's loggers are per role
    if (part == "err") found = "error";                 // spdlog's short names
    else if (part == "warning") found = "warn";
    else if (valid_level(part)) found = part;
  }
  return found;
}

std::string logger_name(const std::string& role, const std::string& where, const std::string& host) {
  if (where.empty()) return role + "@" + host;
  if (where.find('@') != std::string::npos) return role + " " + where;  // "rank2@node1", "client@rank1@node1"
  return role + " " + where + "@" + host;
}

std::shared_ptr<spdlog::logger> make(const std::string& role, const std::string& where) {
  const std::string name = logger_name(role, where, hostname());
  std::lock_guard lock(g_mutex);
  // Several in-process workers may share a name in tests; loggers are not registered globally.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_pattern("[%H:%M:%S.%e] [%n] %l: %v");
  const auto level = current_level();
  sink->set_level(level);
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  std::erase_if(g_made, [](const Made& m) { return m.logger.expired(); });
  g_made.push_back(Made{logger, sink, false});
  return logger;
}

void set_level(const std::string& level) {
  std::lock_guard lock(g_mutex);
  g_level_chosen = true;
  g_level = parse(level);
  spdlog::set_level(g_level);  // loggers registered with spdlog (none of ours; third parties')
  for (const Made& m : g_made) apply(m, g_level);
}

std::shared_ptr<LogTap> LogTap::attach(const std::shared_ptr<spdlog::logger>& logger) {
  auto tap = std::make_shared<LogTap>();
  auto sink = std::make_shared<TapSink>(tap);
  sink->set_level(spdlog::level::info);
  std::lock_guard lock(g_mutex);
  // A logger not made here: its own sinks keep printing what its level let through so far.
  for (auto& s : logger->sinks()) {
    if (s->level() < logger->level()) s->set_level(logger->level());
  }
  // Before the logger is shared with other threads (spdlog's sink list is not thread-safe).
  logger->sinks().push_back(sink);
  bool known = false;
  for (Made& m : g_made) {
    if (m.logger.lock() == logger) {
      m.tapped = known = true;
      apply(m, current_level());
    }
  }
  if (!known) logger->set_level(logger_level(logger->level(), true));  // not made here: keep its console sinks' levels
  return tap;
}

std::vector<LogTap::Line> LogTap::take() {
  std::lock_guard lock(mu_);
  std::vector<Line> out(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.end()));
  pending_.clear();
  return out;
}

void LogTap::add(Line line) {
  std::lock_guard lock(mu_);
  if (pending_.size() >= kMaxPending) pending_.pop_front();
  pending_.push_back(std::move(line));
}

}  // namespace dtask::log

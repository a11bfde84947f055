// One spdlog logger per role, named with its rank/host so interleaved job output stays readable.
#include "common/log.hpp"

#include <atomic>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace dtask::log {

namespace {
std::mutex g_mutex;
spdlog::level::level_enum g_level = spdlog::level::warn;
bool g_level_from_env_checked = false;

spdlog::level::level_enum current_level() {
  if (!g_level_from_env_checked) {
    g_level_from_env_checked = true;
    if (const char* env = std::getenv("DTASK_LOG_LEVEL"); env && valid_level(env)) {
      g_level = spdlog::level::from_str(env);
    }
  }
  return g_level;
}
}  // namespace

bool valid_level(const std::string& level) {
  static const char* names[] = {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"};
  for (const char* n : names) {
    if (level == n) return true;
  }
  return false;
}

std::shared_ptr<spdlog::logger> make(const std::string& role, const std::string& where) {
  std::lock_guard lock(g_mutex);
  std::string name = role + (where.empty() ? "" : " " + where);
  // Several in-process workers may share a name in tests; loggers are not registered globally.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_pattern("[%H:%M:%S.%e] [%n] %l: %v");
  logger->set_level(current_level());
  logger->flush_on(spdlog::level::warn);
  return logger;
}

void set_level(const std::string& level) {
  std::lock_guard lock(g_mutex);
  g_level_from_env_checked = true;
  g_level = spdlog::level::from_str(level == "warning" ? "warn" : level);
  spdlog::set_level(g_level);
}

}  // namespace dtask::log

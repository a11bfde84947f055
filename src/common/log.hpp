// One spdlog logger per role, named with its rank/host so interleaved job output stays readable.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace dtask::log {

// role: "scheduler", "worker", "client", "runner"; where: e.g. "rank2@node1" or a worker name.
std::shared_ptr<spdlog::logger> make(const std::string& role, const std::string& where);
// "trace".."critical","off"; applies to every dtask logger, existing and future. Default: warn.
void set_level(const std::string& level);
// Validates a level name (for CLI input).
bool valid_level(const std::string& level);

}  // namespace dtask::log

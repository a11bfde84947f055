// Prometheus text exposition (format 0.0.4) of a dashboard snapshot: the names in docs/dashboard.md.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dtask::dashboard {

// Pure: the snapshot JSON in, /metrics' body out (HELP and TYPE lines for every metric; label
// values escaped as the format requires).
std::string render_metrics(const nlohmann::json& snapshot);

}  // namespace dtask::dashboard

// The report of a stretch of time: two cumulative report JSONs (docs/dashboard.md) made one.
#pragma once

#include <nlohmann/json.hpp>

namespace dtask::dashboard {

// Pure. `begin` and `end` are Observatory::report()s taken at the two ends (begin may be an
// empty object: the whole job). Counters (by_name, workers' tasks/busy time, transfers) become
// end minus begin; task_stream, errors and throughput keep the entries from begin's time on;
// started_ms becomes begin's time. Throws std::invalid_argument for a JSON of another shape.
nlohmann::json report_window(const nlohmann::json& begin, const nlohmann::json& end);

}  // namespace dtask::dashboard

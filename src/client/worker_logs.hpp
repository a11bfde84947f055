// The pure reading of the scheduler's InfoReply "logs" into Client::get_worker_logs's structs.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include <dtask/types.hpp>

namespace dtask::detail {

// `info` shaped as docs/dashboard.md, "Worker logs":
//   {"workers": {"NAME": {"alive": true, "host": "node1",
//                         "lines": [{"time_us": 1764540000000000, "level": "info", "text": "..."}]}}}
// Keeps the last `n` lines of each worker, oldest first (by time_us; equal times keep their
// order). Fields other than these are ignored, so a newer scheduler may add some. Throws
// std::runtime_error naming the first field that is missing or of the wrong type, or with the
// scheduler's reason when it answered {"error": "..."}.
std::map<std::string, WorkerLogs> parse_worker_logs(const nlohmann::json& info, std::size_t n);

}  // namespace dtask::detail

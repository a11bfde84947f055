// The pure reading of the scheduler's InfoReply "logs" (see worker_logs.hpp).
#include "client/worker_logs.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace dtask::detail {

namespace {
[[noreturn]] void bad(const std::string& where, const char* expected) {
  throw std::runtime_error("dtask: the scheduler's worker logs are malformed: " + where + " is not " + expected);
}

const nlohmann::json& field(const nlohmann::json& obj, const char* name, const std::string& where) {
  auto it = obj.find(name);
  if (it == obj.end()) {
    throw std::runtime_error("dtask: the scheduler's worker logs are malformed: " + where + " has no \"" + name + "\"");
  }
  return *it;
}

std::string string_field(const nlohmann::json& obj, const char* name, const std::string& where) {
  const auto& v = field(obj, name, where);
  if (!v.is_string()) bad(where + "." + name, "a string");
  return v.get<std::string>();
}

LogRecord record_of(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) bad(where, "an object");
  const auto& t = field(j, "time_us", where);
  // Microseconds since the Unix epoch: never negative, and within what system_clock can hold.
  // (However the scheduler built it: an int64 and a uint64 are both integers here.)
  if (!t.is_number_integer() || (!t.is_number_unsigned() && t.get<std::int64_t>() < 0)) {
    bad(where + ".time_us", "a non-negative integer");
  }
  const auto us = t.get<std::uint64_t>();
  constexpr auto kMaxUs = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::duration::max()).count());
  if (us > kMaxUs) bad(where + ".time_us", "a representable time");
  LogRecord r;
  r.time = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::microseconds(static_cast<std::int64_t>(us))));
  r.level = string_field(j, "level", where);
  r.message = string_field(j, "text", where);
  return r;
}
}  // namespace

std::map<std::string, WorkerLogs> parse_worker_logs(const nlohmann::json& info, std::size_t n) {
  if (!info.is_object()) bad("the reply", "an object");
  // What a scheduler answers to a request it cannot serve.
  if (auto e = info.find("error"); e != info.end() && e->is_string()) {
    throw std::runtime_error("dtask: the scheduler refused the worker logs: " + e->get<std::string>());
  }
  const auto& workers = field(info, "workers", "the reply");
  if (!workers.is_object()) bad("\"workers\"", "an object");
  std::map<std::string, WorkerLogs> out;
  for (const auto& [name, w] : workers.items()) {
    const std::string where = "workers[\"" + name + "\"]";
    if (!w.is_object()) bad(where, "an object");
    WorkerLogs logs;
    const auto& alive = field(w, "alive", where);
    if (!alive.is_boolean()) bad(where + ".alive", "a boolean");
    logs.alive = alive.get<bool>();
    logs.host = string_field(w, "host", where);
    const auto& lines = field(w, "lines", where);
    if (!lines.is_array()) bad(where + ".lines", "an array");
    logs.lines.reserve(lines.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      logs.lines.push_back(record_of(lines[i], where + ".lines[" + std::to_string(i) + "]"));
    }
    std::stable_sort(logs.lines.begin(), logs.lines.end(),
                     [](const LogRecord& a, const LogRecord& b) { return a.time < b.time; });
    if (logs.lines.size() > n) {
      logs.lines.erase(logs.lines.begin(), logs.lines.end() - static_cast<std::ptrdiff_t>(n));
    }
    out.emplace(name, std::move(logs));
  }
  return out;
}

}  // namespace dtask::detail

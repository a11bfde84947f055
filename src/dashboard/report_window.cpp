// The report of a stretch of time from two cumulative reports (report_window.hpp).
#include "dashboard/report_window.hpp"

#include <map>
#include <stdexcept>
#include <string>

namespace dtask::dashboard {

using nlohmann::json;

namespace {

void require(const json& r, const char* which) {
  if (!r.is_object()) throw std::invalid_argument(std::string("report_window: the ") + which + " report is not an object");
  for (const char* k : {"by_name", "workers", "transfers", "task_stream", "errors", "throughput"}) {
    if (r.contains(k) && !r[k].is_array()) {
      throw std::invalid_argument(std::string("report_window: the ") + which + " report's '" + k + "' is not a list");
    }
  }
}

// Rows of `end` keyed by `key`, with each field in `fields` reduced by the same row of `begin`.
json subtract_rows(const json& begin, const json& end, const char* list, std::initializer_list<const char*> key,
                   std::initializer_list<const char*> fields) {
  auto id = [&](const json& row) {
    std::string k;
    for (const char* part : key) k += row.value(part, std::string()) + '\x1f';
    return k;
  };
  std::map<std::string, const json*> before;
  if (begin.contains(list)) {
    for (const auto& row : begin[list]) before[id(row)] = &row;
  }
  json out = json::array();
  for (const auto& row : end.value(list, json::array())) {
    json r = row;
    auto it = before.find(id(row));
    if (it != before.end()) {
      for (const char* f : fields) {
        if (!r.contains(f) || !it->second->contains(f)) continue;
        if (r[f].is_number_unsigned()) {
          auto a = r[f].get<std::uint64_t>(), b = (*it->second)[f].get<std::uint64_t>();
          r[f] = a > b ? a - b : 0;
        } else if (r[f].is_number()) {
          double d = r[f].get<double>() - (*it->second)[f].get<double>();
          r[f] = d > 0 ? d : 0.0;
        }
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

json since(const json& end, const char* list, const char* time_field, double from) {
  json out = json::array();
  for (const auto& row : end.value(list, json::array())) {
    double t = row.is_array() ? row.at(0).get<double>() : row.value(time_field, 0.0);
    if (t >= from) out.push_back(row);
  }
  return out;
}

}  // namespace

json report_window(const json& begin, const json& end) {
  require(end, "end");
  if (begin.is_null() || (begin.is_object() && begin.empty())) return end;
  require(begin, "begin");
  json r = end;
  const auto from_ms = begin.value("time_ms", begin.value("finished_ms", std::uint64_t{0}));
  const double from = static_cast<double>(from_ms);
  r["started_ms"] = from_ms;
  r["since_ms"] = from_ms;
  r["by_name"] = subtract_rows(begin, end, "by_name", {"name"}, {"done", "erred", "runs", "task_seconds"});
  r["workers"] = subtract_rows(begin, end, "workers", {"name"}, {"tasks_done", "busy_s"});
  r["transfers"] = subtract_rows(begin, end, "transfers", {"worker", "peer"}, {"count", "bytes", "seconds"});
  r["task_stream"] = since(end, "task_stream", "stop_ms", from);
  r["errors"] = since(end, "errors", "time_ms", from);
  r["throughput"] = since(end, "throughput", "", from);
  if (end.contains("totals") && begin.contains("totals")) {
    json t = end["totals"];
    for (auto& [k, v] : t.items()) {
      if (!begin["totals"].contains(k) || !v.is_number()) continue;
      if (v.is_number_unsigned()) {
        auto a = v.get<std::uint64_t>(), b = begin["totals"][k].get<std::uint64_t>();
        v = a > b ? a - b : 0;
      } else {
        double d = v.get<double>() - begin["totals"][k].get<double>();
        v = d > 0 ? d : 0.0;
      }
    }
    r["totals"] = std::move(t);
  }
  return r;
}

}  // namespace dtask::dashboard

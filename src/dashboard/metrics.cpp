// Prometheus text exposition (format 0.0.4) of a dashboard snapshot: docs/dashboard.md's metric table.
#include "dashboard/metrics.hpp"

#include <charconv>
#include <cmath>
#include <string_view>

namespace dtask::dashboard {
namespace {

using nlohmann::json;

// A number from the snapshot: missing, null or not a number counts as 0 (an empty snapshot, before
// the first publication, still renders every metric).
const json& field(const json& j, std::string_view key) {
  static const json zero = 0;
  if (!j.is_object()) return zero;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? *it : zero;
}

std::string number(const json& v) {
  if (v.is_number_integer()) return v.is_number_unsigned() ? std::to_string(v.get<uint64_t>())
                                                           : std::to_string(v.get<int64_t>());
  double d = v.is_number() ? v.get<double>() : 0.0;
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return ec == std::errc{} ? std::string(buf, end) : "0";
}

// Label values: backslash, double quote and line feed escaped, as the format requires.
std::string escape_label(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string text(const json& j, std::string_view key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

const json& array(const json& j, std::string_view key) {
  static const json empty = json::array();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : empty;
}

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // labels: {name, value} pairs, values unescaped.
  void sample(const char* name, std::initializer_list<std::pair<const char*, std::string>> labels, const json& v) {
    out_ += name;
    if (labels.size() > 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [k, val] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        out_ += escape_label(val);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += number(v);
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string render_metrics(const json& snapshot) {
  Writer w;
  const json& workers = array(snapshot, "workers");
  const json& progress = array(snapshot, "progress");
  const json& totals = snapshot.is_object() ? snapshot.value("totals", json::object()) : json::object();
  const json& sched = snapshot.is_object() ? snapshot.value("scheduler", json::object()) : json::object();

  w.family("dtask_workers", "gauge", "Live workers.");
  w.sample("dtask_workers", {}, json(workers.size()));
  int64_t threads = 0;
  for (const json& wk : workers) threads += field(wk, "nthreads").get<int64_t>();
  w.family("dtask_worker_threads", "gauge", "Threads of the live workers, summed.");
  w.sample("dtask_worker_threads", {}, json(threads));

  w.family("dtask_tasks", "gauge", "Tasks the scheduler holds, by state.");
  if (snapshot.is_object() && snapshot.contains("tasks_by_state") && snapshot["tasks_by_state"].is_object())
    for (const auto& [state, n] : snapshot["tasks_by_state"].items())
      w.sample("dtask_tasks", {{"state", state}}, n.is_number() ? n : json(0));

  w.family("dtask_tasks_done_total", "counter", "Tasks finished, by task name.");
  for (const json& row : progress) w.sample("dtask_tasks_done_total", {{"name", text(row, "name")}}, field(row, "done"));
  w.family("dtask_tasks_erred_total", "counter", "Tasks failed, by task name.");
  for (const json& row : progress)
    w.sample("dtask_tasks_erred_total", {{"name", text(row, "name")}}, field(row, "erred"));

  w.family("dtask_task_seconds_total", "counter", "Run time of finished tasks in seconds, summed over workers.");
  w.sample("dtask_task_seconds_total", {}, field(totals, "task_seconds"));
  w.family("dtask_transfers_total", "counter", "Inputs fetched between workers.");
  w.sample("dtask_transfers_total", {}, field(totals, "transfers"));
  w.family("dtask_transfer_bytes_total", "counter", "Bytes of the inputs fetched between workers.");
  w.sample("dtask_transfer_bytes_total", {}, field(totals, "transfer_bytes"));

  w.family("dtask_worker_processing", "gauge", "Tasks placed on the worker and not finished.");
  for (const json& wk : workers) w.sample("dtask_worker_processing", {{"worker", text(wk, "name")}}, field(wk, "processing"));
  w.family("dtask_worker_memory_bytes", "gauge", "The worker's last memory report, by kind.");
  for (const json& wk : workers) {
    std::string name = text(wk, "name");
    w.sample("dtask_worker_memory_bytes", {{"worker", name}, {"kind", "held"}}, field(wk, "memory_held"));
    w.sample("dtask_worker_memory_bytes", {{"worker", name}, {"kind", "spilled"}}, field(wk, "memory_spilled"));
    w.sample("dtask_worker_memory_bytes", {{"worker", name}, {"kind", "process"}}, field(wk, "memory_process"));
    w.sample("dtask_worker_memory_bytes", {{"worker", name}, {"kind", "limit"}}, field(wk, "memory_limit"));
  }
  w.family("dtask_worker_paused", "gauge", "1 when the worker is paused.");
  for (const json& wk : workers) {
    bool paused = wk.is_object() && wk.value("paused", false);
    w.sample("dtask_worker_paused", {{"worker", text(wk, "name")}}, json(paused ? 1 : 0));
  }

  w.family("dtask_scheduler_cpu_seconds_total", "counter", "CPU time of the scheduler process in seconds.");
  w.sample("dtask_scheduler_cpu_seconds_total", {}, field(sched, "cpu_seconds"));
  w.family("dtask_scheduler_resident_bytes", "gauge", "Resident memory of the scheduler process.");
  w.sample("dtask_scheduler_resident_bytes", {}, field(sched, "rss_bytes"));
  return w.take();
}

}  // namespace dtask::dashboard

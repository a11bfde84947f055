// /metrics rendering (dashboard/metrics): every documented metric with HELP and TYPE, a strict parse of the output, counts and label escaping.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dashboard/metrics.hpp"

using nlohmann::json;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

struct Parsed {
  std::map<std::string, std::string> types;
  std::set<std::string> helps;
  std::vector<Sample> samples;
};

// A strict reader of the text format 0.0.4: HELP/TYPE comments, then `name{k="v",...} value`
// lines; each sample's family has its TYPE line before it; escapes \\ \" \n only.
Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  auto name_ok = [](const std::string& n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
    for (char c : n)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
    return true;
  };
  while (std::getline(in, line)) {
    if (line.empty()) throw std::runtime_error("empty line");
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      std::string n = rest.substr(0, rest.find(' '));
      if (!name_ok(n) || rest.size() <= n.size() + 1) throw std::runtime_error("bad HELP: " + line);
      p.helps.insert(n);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string n, type, extra;
      t >> n >> type;
      if (!name_ok(n) || (type != "gauge" && type != "counter") || (t >> extra) || p.types.count(n))
        throw std::runtime_error("bad TYPE: " + line);
      p.types[n] = type;
      continue;
    }
    if (line[0] == '#') throw std::runtime_error("unknown comment: " + line);
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!name_ok(s.name)) throw std::runtime_error("bad name: " + line);
    if (!p.types.count(s.name)) throw std::runtime_error("sample before its TYPE: " + line);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        size_t eq = line.find('=', i);
        std::string key = line.substr(i, eq - i);
        if (!name_ok(key) || line.at(eq + 1) != '"') throw std::runtime_error("bad label: " + line);
        std::string value;
        for (i = eq + 2; line.at(i) != '"'; ++i) {
          if (line[i] == '\\') {
            char e = line.at(++i);
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else throw std::runtime_error("bad escape: " + line);
          } else {
            value += line[i];
          }
        }
        s.labels[key] = value;
        ++i;
        if (line.at(i) == ',') ++i;
        else if (line.at(i) != '}') throw std::runtime_error("bad label list: " + line);
      }
      ++i;
    }
    if (line.at(i) != ' ') throw std::runtime_error("no value: " + line);
    std::string v = line.substr(i + 1);
    size_t used = 0;
    s.value = std::stod(v, &used);
    if (used != v.size()) throw std::runtime_error("bad value: " + line);
    p.samples.push_back(s);
  }
  return p;
}

double value_of(const Parsed& p, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
  int found = 0;
  double v = 0;
  for (const Sample& s : p.samples)
    if (s.name == name && s.labels == labels) ++found, v = s.value;
  if (found != 1) throw std::runtime_error(name + ": " + std::to_string(found) + " samples");
  return v;
}

json snapshot() {
  return json::parse(R"({
    "version": 1, "time_ms": 1764540000000, "started_ms": 1764539990000,
    "scheduler": {"address": "tcp://10.0.0.1:40123", "host": "node1", "job_id": "",
                  "cpu_seconds": 1.25, "cpu_percent": 12.5, "rss_bytes": 41943040},
    "workers": [
      {"name": "rank2", "host": "node1", "nthreads": 2, "processing": 3, "memory_held": 1048576,
       "memory_spilled": 0, "memory_process": 73400320, "memory_limit": 268435456, "paused": false},
      {"name": "odd \"w\\1\"\nx", "host": "node2", "nthreads": 4, "processing": 0, "memory_held": 5,
       "memory_spilled": 7, "memory_process": 9, "memory_limit": 0, "paused": true}
    ],
    "tasks_by_state": {"released": 0, "waiting": 10, "queued": 5, "processing": 3, "memory": 40, "erred": 1},
    "progress": [
      {"name": "inc", "done": 120, "erred": 1, "running": 3, "waiting": 15, "in_memory": 40},
      {"name": "load", "done": 7, "erred": 0, "running": 0, "waiting": 0, "in_memory": 7}
    ],
    "totals": {"done": 127, "erred": 1, "submitted": 146, "task_seconds": 10.5, "transfers": 12, "transfer_bytes": 65536},
    "task_stream": [], "task_stream_dropped": 0, "throughput": [], "errors": []
  })");
}

const std::vector<std::pair<std::string, std::string>> kDocumented = {
    {"dtask_workers", "gauge"}, {"dtask_worker_threads", "gauge"}, {"dtask_tasks", "gauge"},
    {"dtask_tasks_done_total", "counter"}, {"dtask_tasks_erred_total", "counter"},
    {"dtask_task_seconds_total", "counter"}, {"dtask_transfers_total", "counter"},
    {"dtask_transfer_bytes_total", "counter"}, {"dtask_worker_processing", "gauge"},
    {"dtask_worker_memory_bytes", "gauge"}, {"dtask_worker_paused", "gauge"},
    {"dtask_scheduler_cpu_seconds_total", "counter"}, {"dtask_scheduler_resident_bytes", "gauge"}};

}  // namespace

TEST_CASE("Metrics.EveryDocumentedFamilyHasHelpAndType") {
  Parsed p = parse(dtask::dashboard::render_metrics(snapshot()));
  CHECK(p.types.size() == kDocumented.size());
  for (const auto& [name, type] : kDocumented) {
    CHECK_MESSAGE(p.types[name] == type, name);
    CHECK_MESSAGE(p.helps.count(name) == 1, name);
  }
}

TEST_CASE("Metrics.CountsEqualTheSnapshots") {
  Parsed p = parse(dtask::dashboard::render_metrics(snapshot()));
  CHECK(value_of(p, "dtask_workers") == 2);
  CHECK(value_of(p, "dtask_worker_threads") == 6);
  CHECK(value_of(p, "dtask_tasks", {{"state", "waiting"}}) == 10);
  CHECK(value_of(p, "dtask_tasks", {{"state", "memory"}}) == 40);
  CHECK(value_of(p, "dtask_tasks_done_total", {{"name", "inc"}}) == 120);
  CHECK(value_of(p, "dtask_tasks_done_total", {{"name", "load"}}) == 7);
  CHECK(value_of(p, "dtask_tasks_erred_total", {{"name", "inc"}}) == 1);
  CHECK(value_of(p, "dtask_task_seconds_total") == 10.5);
  CHECK(value_of(p, "dtask_transfers_total") == 12);
  CHECK(value_of(p, "dtask_transfer_bytes_total") == 65536);
  CHECK(value_of(p, "dtask_worker_processing", {{"worker", "rank2"}}) == 3);
  CHECK(value_of(p, "dtask_worker_memory_bytes", {{"worker", "rank2"}, {"kind", "limit"}}) == 268435456);
  CHECK(value_of(p, "dtask_worker_memory_bytes", {{"worker", "rank2"}, {"kind", "process"}}) == 73400320);
  CHECK(value_of(p, "dtask_worker_paused", {{"worker", "rank2"}}) == 0);
  CHECK(value_of(p, "dtask_scheduler_cpu_seconds_total") == 1.25);
  CHECK(value_of(p, "dtask_scheduler_resident_bytes") == 41943040);
  // The per-name counters add up to the totals.
  double done = 0;
  for (const Sample& s : p.samples)
    if (s.name == "dtask_tasks_done_total") done += s.value;
  CHECK(done == snapshot()["totals"]["done"].get<double>());
}

TEST_CASE("Metrics.LabelValuesAreEscaped") {
  std::string text = dtask::dashboard::render_metrics(snapshot());
  CHECK(text.find("worker=\"odd \\\"w\\\\1\\\"\\nx\"") != std::string::npos);
  Parsed p = parse(text);
  const std::string odd = "odd \"w\\1\"\nx";
  CHECK(value_of(p, "dtask_worker_paused", {{"worker", odd}}) == 1);
  CHECK(value_of(p, "dtask_worker_memory_bytes", {{"worker", odd}, {"kind", "spilled"}}) == 7);
}

TEST_CASE("Metrics.EmptySnapshotStillValid") {
  // Before the first publication the server renders an empty object.
  Parsed p = parse(dtask::dashboard::render_metrics(json::object()));
  CHECK(p.types.size() == kDocumented.size());
  CHECK(value_of(p, "dtask_workers") == 0);
  CHECK(value_of(p, "dtask_task_seconds_total") == 0);
}

TEST_CASE("Metrics.ParserRejectsWhatTheFormatForbids") {
  // The checks above mean something only if the parser is strict.
  CHECK_THROWS(parse("dtask_x 1\n"));                                            // no TYPE
  CHECK_THROWS(parse("# TYPE dtask_x gauge\ndtask_x{a=\"b\\q\"} 1\n"));          // bad escape
  CHECK_THROWS(parse("# TYPE dtask_x gauge\ndtask_x{a=\"b\"} 1x\n"));            // bad value
  CHECK_THROWS(parse("# TYPE dtask_x gauge\ndtask_x{a=\"line\nbreak\"} 1\n"));  // raw newline
  CHECK_NOTHROW(parse("# TYPE dtask_x gauge\ndtask_x{a=\"b\\nc\"} 1.5\n"));
}

// Test program: serves evolving fake snapshots through dashboard::Server (`serve`), or writes a
// sample job report (`report FILE`), for the headless Chromium checks in this folder.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "dashboard/http_server.hpp"
#include "dashboard/report_html.hpp"

using nlohmann::json;
namespace dd = dtask::dashboard;

namespace {

constexpr int kWorkers = 3;
constexpr int kThreads = 2;
const char* const kHostile = "</script><script>alert(1)</script><img src=x onerror=alert(2)> & \"quoted\"";

double now_ms() {
  using namespace std::chrono;
  return static_cast<double>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// A job `t` seconds old: "load" then "inc" finish at fixed rates (still rising after 3 minutes, so two
// page loads however slow see progress), "fail" fails once a second.
json snapshot(double start_ms, double t) {
  double now = start_ms + t * 1000;
  int load = std::min(200, static_cast<int>(40 * t)), inc = std::min(2000, static_cast<int>(10 * t));
  int fail = std::min(5, static_cast<int>(t));
  json workers = json::array(), stream = json::array(), errors = json::array(), tput = json::array();
  for (int w = 0; w < kWorkers; ++w) {
    std::string name = "fake-" + std::to_string(w);
    workers.push_back({{"name", name}, {"host", "node" + std::to_string(w % 2)},
                       {"address", "tcp://127.0.0.1:" + std::to_string(40200 + w)}, {"nthreads", kThreads},
                       {"processing", w + 1}, {"in_memory", 10 * w}, {"nbytes", 1 << 20},
                       {"memory_held", (w + 1) * (40 << 20)}, {"memory_spilled", w * (16 << 20)},
                       {"spilled_count", w}, {"memory_process", (w + 2) * (50 << 20)},
                       {"memory_limit", 256 << 20}, {"paused", w == 2}, {"retiring", false},
                       {"last_seen_s", 0.1 * w}, {"tasks_done", (load + inc) / kWorkers},
                       {"busy_s", t * kThreads * 0.7}});
    for (int th = 0, n = 0; th < kThreads; ++th)
      for (double s = now - 10000; s < now; s += 350 + 90 * w + 40 * th, ++n)
        stream.push_back({{"worker", name}, {"thread", th}, {"name", n % 3 ? "inc" : "load"},
                          {"key", "inc-" + std::to_string(static_cast<long long>(s))}, {"start_ms", s},
                          {"stop_ms", s + 250}, {"erred", false}});
  }
  for (int i = 0; i < fail; ++i)
    errors.push_back({{"time_ms", start_ms + i * 1000}, {"name", "fail"}, {"key", "fail-" + std::to_string(i)},
                      {"worker", "fake-1"}, {"message", std::string("boom ") + std::to_string(i) + " " + kHostile}});
  for (double s = std::max(0.0, t - 60); s <= t; s += 0.25)
    tput.push_back({start_ms + s * 1000, s < 5 ? 100.0 : 60.0 + 10 * (static_cast<int>(s) % 3)});
  return {{"version", 1}, {"time_ms", now}, {"started_ms", start_ms},
          {"scheduler", {{"address", "tcp://127.0.0.1:40123"}, {"host", "fakehost"}, {"job_id", ""},
                         {"cpu_seconds", 0.05 * t}, {"cpu_percent", 5.0}, {"rss_bytes", 41943040}}},
          {"workers", workers},
          {"tasks_by_state", {{"released", 0}, {"waiting", 2200 - load - inc}, {"queued", 0},
                              {"processing", 6}, {"memory", 40}, {"erred", fail}}},
          {"progress", json::array({
              {{"name", "load"}, {"done", load}, {"erred", 0}, {"running", load < 200 ? 2 : 0}, {"waiting", 200 - load}, {"in_memory", 10}},
              {{"name", "inc"}, {"done", inc}, {"erred", 0}, {"running", inc < 2000 ? 4 : 0}, {"waiting", 2000 - inc}, {"in_memory", 30}},
              {{"name", "fail"}, {"done", 0}, {"erred", fail}, {"running", 0}, {"waiting", 5 - fail}, {"in_memory", 0}}})},
          {"totals", {{"done", load + inc}, {"erred", fail}, {"submitted", 2205}, {"task_seconds", t * 4},
                      {"transfers", static_cast<int>(t * 3)}, {"transfer_bytes", static_cast<int>(t * 3) * 4096}}},
          {"task_stream", stream}, {"task_stream_dropped", 0}, {"throughput", tput}, {"errors", errors}};
}

json report() {
  double start = 1764540000000.0, t = 30;
  json s = snapshot(start, t);
  json by_name = json::array(), workers = json::array();
  for (const json& p : s["progress"])
    by_name.push_back({{"name", p["name"]}, {"done", p["done"]}, {"erred", p["erred"]},
                       {"task_seconds", p["done"].get<int>() * 0.01}, {"max_s", 0.05}});
  for (const json& w : s["workers"])
    workers.push_back({{"name", w["name"]}, {"host", w["host"]}, {"nthreads", w["nthreads"]},
                       {"first_seen_ms", start}, {"last_seen_ms", start + t * 1000}, {"alive", w["name"] != "fake-2"},
                       {"tasks_done", w["tasks_done"]}, {"busy_s", w["busy_s"]}});
  return {{"version", 1}, {"started_ms", start}, {"finished_ms", start + t * 1000}, {"since_ms", 0},
          {"scheduler", s["scheduler"]}, {"by_name", by_name}, {"workers", workers},
          {"transfers", json::array({{{"worker", "fake-0"}, {"peer", "tcp://127.0.0.1:40201"}, {"count", 3},
                                      {"bytes", 12288}, {"seconds", 0.01}}})},
          {"task_stream", s["task_stream"]}, {"task_stream_dropped", 7}, {"throughput", s["throughput"]},
          {"errors", s["errors"]}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  try {
    if ((mode == "report" || mode == "report-sparse") && argc == 3) {
      dd::write_report_html(argv[2], mode == "report" ? report() : json{{"version", 1}});
      return 0;
    }
    if (mode == "serve" || mode == "serve-sparse") {
      // serve-sparse: snapshots with most fields missing or empty, as a scheduler with no job yet
      // might publish; the page must draw them without errors.
      double seconds = argc > 3 && std::string(argv[2]) == "--seconds" ? std::stod(argv[3]) : 60;
      auto server = dd::Server::start({.address = ":0", .default_host = "127.0.0.1", .token = dd::make_token(), .log = nullptr, .want_fresh = {}});
      std::cout << "dashboard: " << server->link() << std::endl;
      double start = now_ms();
      for (double t = 0; t < seconds; t = (now_ms() - start) / 1000) {
        json s = mode == "serve" ? snapshot(start, t)
                                 : json{{"version", 1}, {"time_ms", start + t * 1000}, {"workers", json::array()},
                                        {"progress", json::array()}, {"throughput", json::array()}};
        server->publish(std::make_shared<const dd::Publication>(dd::Publication{s, s.dump()}));
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "fake_server: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: fake_server serve|serve-sparse [--seconds N] | fake_server report|report-sparse FILE\n";
  return 2;
}

// Client::get_worker_logs on worker processes, also for one killed with SIGKILL; Client::dashboard_link.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include <dtask/dtask.hpp>

#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

using Logs = std::map<std::string, dtask::WorkerLogs>;

// Polls get_worker_logs() until `pred` holds; false if it still does not after 20 s (generous:
// workers send their new lines with every heartbeat).
template <class Pred>
bool logs_eventually(dtask::Client& c, Pred pred, Logs& last) {
  for (int i = 0; i < 400; ++i) {
    last = c.get_worker_logs();
    if (pred(last)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

long pid_of(const dtask::SchedulerInfo& info, const std::string& name) {
  for (const auto& w : info.workers) {
    if (w.name == name) return w.pid;
  }
  return 0;
}

bool has_lines(const Logs& logs, const std::string& name) {
  auto it = logs.find(name);
  return it != logs.end() && !it->second.lines.empty();
}

bool same_line(const dtask::LogRecord& a, const dtask::LogRecord& b) {
  return a.time == b.time && a.level == b.level && a.message == b.message;
}

}  // namespace

// Every worker process's lines reach the client; after one is killed with SIGKILL its name is
// still listed with the lines it sent before and the scheduler's line saying it died (its
// supervisor starts a replacement under the same name, which may already be alive again).
TEST_CASE("WorkerLogs.EveryWorkerHasLinesAndAKilledWorkersLinesRemain") {
  dtask::LocalClusterOptions o;
  o.n_workers = 2;
  o.processes = true;
  o.plugin = TEST_PLUGIN_PATH;
  o.log_level = "error";  // the console's level: the logs the scheduler keeps are info and above anyway
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 10s));
  // Some work, so the workers have run tasks and sent telemetry.
  std::vector<int> xs(50);
  for (int i = 0; i < 50; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto out = client.gather(client.map(inc, xs));
  CHECK(out.back() == 50);

  Logs logs;
  const bool every = logs_eventually(client, [](const Logs& l) { return has_lines(l, "0") && has_lines(l, "1"); }, logs);
  for (const auto& [name, w] : logs) MESSAGE("worker '" << name << "': " << w.lines.size() << " lines, alive " << w.alive);
  REQUIRE_MESSAGE(every, "not every worker's log lines reached the client");
  for (const auto& name : {"0", "1"}) {
    const auto& w = logs.at(name);
    CHECK(w.alive);
    CHECK_FALSE(w.host.empty());
    for (const auto& line : w.lines) {
      CHECK_FALSE(line.level.empty());
      CHECK(line.time.time_since_epoch().count() > 0);
    }
  }
  // The last n lines only.
  for (const auto& [name, w] : client.get_worker_logs(1)) CHECK(w.lines.size() <= 1);

  const dtask::LogRecord before = logs.at("0").lines.front();
  const long victim = pid_of(client.scheduler_info(), "0");
  REQUIRE(victim > 0);
  REQUIRE(victim != static_cast<long>(::getpid()));
  REQUIRE(::kill(static_cast<pid_t>(victim), SIGKILL) == 0);

  auto died = [](const dtask::WorkerLogs& w) {
    return std::any_of(w.lines.begin(), w.lines.end(),
                       [](const dtask::LogRecord& r) { return r.message.find("died") != std::string::npos; });
  };
  REQUIRE_MESSAGE(logs_eventually(client, [&](const Logs& l) { return l.count("0") && died(l.at("0")); }, logs),
                  "no line saying worker '0' died");
  const auto& lines = logs.at("0").lines;
  CHECK(std::any_of(lines.begin(), lines.end(), [&](const dtask::LogRecord& r) { return same_line(r, before); }));
  CHECK(has_lines(logs, "1"));
}

// The link the cluster's scheduler serves is the one the client was told; none without a dashboard.
TEST_CASE("Client.DashboardLinkIsTheSchedulersAndEmptyWithoutOne") {
  {
    dtask::LocalClusterOptions o;
    o.n_workers = 1;
    o.dashboard_address = ":0";
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    const std::string link = client.dashboard_link();
    CHECK(link == cluster.dashboard_link());
    CHECK(link.rfind("http://", 0) == 0);
    CHECK(link.find("/status?token=") != std::string::npos);
  }
  {
    dtask::LocalClusterOptions o;
    o.n_workers = 1;
    o.dashboard_address = "none";
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    CHECK(client.dashboard_link().empty());
  }
}

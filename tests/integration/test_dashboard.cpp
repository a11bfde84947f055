// The dashboard of a running LocalCluster: token, /metrics against the job's counts, "none", the default port, the report.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <dtask/dtask.hpp>

#include "scratch_dir.hpp"
#include "test_tasks.hpp"

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Link {
  std::string host;
  int port = 0;
  std::string token;
};

// http://HOST:PORT/status?token=T
Link parse_link(const std::string& link) {
  Link l;
  REQUIRE(link.rfind("http://", 0) == 0);
  auto rest = link.substr(7);
  auto colon = rest.find(':');
  auto slash = rest.find('/');
  REQUIRE(colon != std::string::npos);
  REQUIRE(slash != std::string::npos);
  l.host = rest.substr(0, colon);
  l.port = std::stoi(rest.substr(colon + 1, slash - colon - 1));
  auto t = rest.find("token=");
  REQUIRE(t != std::string::npos);
  l.token = rest.substr(t + 6);
  return l;
}

std::string get(const Link& l, const std::string& path, int* status = nullptr) {
  httplib::Client c(l.host, l.port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(5, 0);
  auto res = c.Get(path.c_str());
  REQUIRE(res);
  if (status) *status = res->status;
  return res->body;
}

// The value of one Prometheus sample line `name{labels} value` (labels exactly as written).
std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

// Ports this process listens on (TCP, IPv4 and IPv6): /proc/net/tcp* rows in LISTEN whose
// socket inode is one of our file descriptors.
std::set<int> listening_ports_of_this_process() {
  std::set<std::string> inodes;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d)) {
      char target[256];
      std::string p = std::string("/proc/self/fd/") + e->d_name;
      auto n = ::readlink(p.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = 0;
      std::string t(target);
      if (t.rfind("socket:[", 0) == 0) inodes.insert(t.substr(8, t.size() - 9));
    }
    ::closedir(d);
  }
  std::set<int> ports;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(file);
    std::string line;
    std::getline(f, line);
    while (std::getline(f, line)) {
      std::istringstream row(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      row >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
      if (st != "0A" || !inodes.count(inode)) continue;
      ports.insert(std::stoi(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return ports;
}

}  // namespace

namespace dtask::test {
// The data a report page embeds (report.html: <script type="application/json" id="report-data">).
json report_data_of(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-data\">";
  auto a = html.find(open);
  REQUIRE(a != std::string::npos);
  a += open.size();
  auto b = html.find("</script>", a);
  REQUIRE(b != std::string::npos);
  return json::parse(html.substr(a, b - a));
}
}  // namespace dtask::test

namespace {

int port_of(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

dtask::LocalClusterOptions options(const std::string& dashboard) {
  dtask::LocalClusterOptions o;
  o.n_workers = 2;
  o.plugin = TEST_PLUGIN_PATH;
  o.dashboard_address = dashboard;
  return o;
}

}  // namespace

TEST_CASE("Dashboard.MetricsCountTheJobAndEveryRouteWantsTheToken") {
  dtask::LocalCluster cluster(options(":0"));
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 10s));
  Link l = parse_link(cluster.dashboard_link());
  CHECK(client.dashboard_link() == cluster.dashboard_link());
  CHECK(l.token.size() == 32);

  std::vector<int> xs(40);
  for (int i = 0; i < 40; ++i) xs[i] = i;
  auto incs = client.map(inc, xs);
  auto bad = client.submit(fail_if_negative, -1);
  CHECK(client.gather(incs).size() == 40);
  client.wait(std::vector{bad});

  // The snapshot is published every 250 ms: the counts arrive within a few.
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = get(l, "/metrics?token=" + l.token);
    if (sample(metrics, "dtask_tasks_done_total{name=\"inc\"}") == 40 &&
        sample(metrics, "dtask_tasks_erred_total{name=\"fail_if_negative\"}") == 1) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  CHECK(sample(metrics, "dtask_tasks_done_total{name=\"inc\"}") == 40);
  CHECK(sample(metrics, "dtask_tasks_erred_total{name=\"fail_if_negative\"}") == 1);
  CHECK(sample(metrics, "dtask_workers") == 2);
  CHECK(metrics.find("# TYPE dtask_tasks_done_total counter") != std::string::npos);

  int status = 0;
  json snap = json::parse(get(l, "/api/snapshot?token=" + l.token, &status));
  CHECK(status == 200);
  CHECK(snap["workers"].size() == 2);
  REQUIRE(snap["errors"].size() == 1);
  CHECK(snap["errors"][0]["name"] == "fail_if_negative");

  for (const char* path : {"/status", "/api/snapshot", "/metrics", "/"}) {
    get(l, path, &status);
    CHECK_MESSAGE(status == 403, path);
    get(l, std::string(path) + "?token=" + std::string(32, '0'), &status);
    CHECK_MESSAGE(status == 403, path);
  }
  get(l, "/status?token=" + l.token, &status);
  CHECK(status == 200);
}

TEST_CASE("Dashboard.NoneListensNowhere") {
  dtask::LocalCluster cluster(options("none"));
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 10s));
  CHECK(cluster.dashboard_link().empty());
  CHECK(client.dashboard_link().empty());
  // Every port this process listens on is the scheduler's or a worker's data server.
  std::set<int> ours{port_of(cluster.scheduler_address())};
  for (const auto& w : client.scheduler_info().workers) ours.insert(port_of(w.address));
  for (int p : listening_ports_of_this_process()) CHECK_MESSAGE(ours.count(p) == 1, "an unexpected listening port ", p);

  // ...while with a dashboard there is exactly one more, the link's.
  dtask::LocalCluster with(options(":0"));
  dtask::Client c2(with);
  REQUIRE(c2.wait_for_workers(2, 10s));
  ours.insert(port_of(with.scheduler_address()));
  for (const auto& w : c2.scheduler_info().workers) ours.insert(port_of(w.address));
  std::set<int> extra;
  for (int p : listening_ports_of_this_process()) {
    if (!ours.count(p)) extra.insert(p);
  }
  CHECK(extra == std::set<int>{parse_link(with.dashboard_link()).port});
}

TEST_CASE("Dashboard.DefaultPortIs8787OrTheNextFree") {
  // Hold 8787 (if someone else holds it already, it is taken all the same).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(8787);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bool held = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 1) == 0;
  dtask::LocalCluster cluster(options(""));
  Link l = parse_link(cluster.dashboard_link());
  CHECK(l.port > 8787);
  CHECK(l.port < 8787 + 100);
  int status = 0;
  get(l, "/api/snapshot?token=" + l.token, &status);
  CHECK(status == 200);  // a read waits for a fresh snapshot rather than finding none
  if (held) ::close(fd);
}

TEST_CASE("Dashboard.ReportOfTheRunNamesItsTasksWithTheirCounts") {
  dtask::test::ScratchDir dir("dashboard-report");
  const std::string path = dir.path + "/report.html";
  {
    auto o = options("none");
    o.report = path;
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    REQUIRE(client.wait_for_workers(2, 10s));
    std::vector<int> xs(30);
    for (int i = 0; i < 30; ++i) xs[i] = i;
    CHECK(client.gather(client.map(inc, xs)).size() == 30);
    std::vector<int> ys{1, 2, 3, 4, 5};
    CHECK(client.gather(client.map(dec, ys)).size() == 5);
    auto bad = client.submit(fail_if_negative, -7);
    client.wait(std::vector{bad});
    // The workers' last runs travel with their next heartbeat (or their goodbye).
    client.close();
    cluster.close();
  }
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "no report at ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string html = ss.str();
  CHECK(html.find("<html") != std::string::npos);
  // Self-contained: nothing is loaded from anywhere.
  CHECK(html.find("src=\"http") == std::string::npos);
  CHECK(html.find("href=\"http") == std::string::npos);
  json report = dtask::test::report_data_of(html);
  std::map<std::string, json> by;
  for (const auto& r : report["by_name"]) by[r["name"]] = r;
  CHECK(by["inc"]["done"] == 30);
  CHECK(by["dec"]["done"] == 5);
  CHECK(by["fail_if_negative"]["erred"] == 1);
  CHECK(by["inc"]["runs"] == 30);
  REQUIRE(report["errors"].size() == 1);
  CHECK(report["errors"][0]["message"].get<std::string>().find("negative") != std::string::npos);
  CHECK(report["task_stream"].size() == 36);
}

TEST_CASE("Dashboard.PerformanceReportCoversOnlyItsWindow") {
  dtask::test::ScratchDir dir("dashboard-window");
  const std::string path = dir.path + "/window.html";
  dtask::LocalCluster cluster(options("none"));
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 10s));
  std::vector<int> xs(10, 1);
  CHECK(client.gather(client.map(inc, xs)).size() == 10);
  {
    dtask::PerformanceReport report(client, path);
    std::vector<int> ys(20, 1);
    CHECK(client.gather(client.map(dec, ys)).size() == 20);
    report.close();
  }
  std::ifstream f(path);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  json report = dtask::test::report_data_of(ss.str());
  std::map<std::string, json> by;
  for (const auto& r : report["by_name"]) by[r["name"]] = r;
  CHECK(by["dec"]["done"] == 20);
  CHECK(by["inc"]["done"] == 0);
  std::size_t decs = 0;
  for (const auto& run : report["task_stream"]) decs += run["name"] == "dec";
  CHECK(decs == 20);

  // A path that cannot be written is a clear error naming it.
  dtask::PerformanceReport bad(client, dir.path + "/no/such/dir/r.html");
  CHECK_THROWS_WITH_AS(bad.close(), doctest::Contains("no/such/dir"), std::runtime_error);
}

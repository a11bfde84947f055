// Scale-down without loss: Client::retire_workers, dtask-worker --nworkers, --lifetime and --death-timeout, asserted by outcomes.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <dtask/dtask.hpp>

#include "eventually.hpp"
#include "processes.hpp"

#include "client/internal.hpp"
#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

using dtask::test::eventually;
using dtask::test::counter;
using dtask::test::read_file;
using dtask::test::spawn;
using dtask::test::wait_exit;

// A standalone scheduler in a scratch directory, stopped (and reaped) at the end of the test.
struct StandaloneScheduler {
  std::string dir, file;
  pid_t pid = 0;
  StandaloneScheduler() {
    const char* exe = std::getenv("DTASK_SCHEDULER_EXE");
    REQUIRE(exe);
    char tmpl[] = "/tmp/dtask-scale-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    dir = tmpl;
    file = dir + "/scheduler.json";
    pid = spawn({exe, "--scheduler-file", file, "--host", "127.0.0.1"}, dir + "/scheduler.log");
    for (int i = 0; i < 1000 && !std::filesystem::exists(file); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(std::filesystem::exists(file));
  }
  ~StandaloneScheduler() {
    ::kill(pid, SIGTERM);
    if (wait_exit(pid, 10s) == -1) {
      ::kill(pid, SIGKILL);
      wait_exit(pid, 5s);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  pid_t worker(std::vector<std::string> extra, const std::string& log_name) {
    const char* exe = std::getenv("DTASK_WORKER_EXE");
    REQUIRE(exe);
    std::vector<std::string> args = {exe, "--scheduler-file", file, "--plugin", TEST_PLUGIN_PATH};
    args.insert(args.end(), extra.begin(), extra.end());
    return spawn(args, dir + "/" + log_name);
  }
};

long long pid_of(const dtask::SchedulerInfo& info, const std::string& name) {
  for (const auto& w : info.workers) {
    if (w.name == name) return w.pid;
  }
  return 0;
}

}  // namespace

// Scale-down by request: the retired worker's results are all still readable, and they are the
// values it computed (a recomputed one would carry another process's pid); the job goes on.
TEST_CASE("Scale.RetireWorkersKeepsEveryResultAndRecomputesNothing") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  o.n_workers = 3;
  o.plugin = TEST_PLUGIN_PATH;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(3, 20s));

  std::vector<int> xs(300);
  for (int i = 0; i < 300; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto fs = client.map(pid, xs);
  auto computed_by = client.gather(fs);
  auto info = client.scheduler_info();
  const long long p0 = pid_of(info, "0"), p1 = pid_of(info, "1");
  REQUIRE(p0 > 0);
  REQUIRE(p1 > 0);
  const auto on_retired = std::count_if(computed_by.begin(), computed_by.end(), [&](long long p) { return p == p0 || p == p1; });
  REQUIRE(on_retired > 0);

  CHECK(client.retire_workers({"0", "1"}, 60s));
  info = client.scheduler_info();
  REQUIRE(info.workers.size() == 1);
  CHECK(info.workers[0].name == "2");

  std::vector<dtask::Future<long long>> again;
  for (auto& f : fs) again.push_back(client.submit(add64, f, 0LL));
  CHECK(client.gather(again) == computed_by);  // same pids: read where they were copied to
  CHECK(client.gather(fs) == computed_by);     // and the original futures still answer
  CHECK(counter(client, "workers_retired") == 2);
  CHECK(client.gather(client.map(inc, std::vector<int>{1, 2, 3})) == std::vector<int>{2, 3, 4});
  // Names that are not there count as gone at once.
  CHECK(client.retire_workers({"no-such-worker"}, 5s));
}

// The same with workers as threads of this process: the retired one's thread ends, its results
// stay readable, and the cluster still closes cleanly at the end.
TEST_CASE("Scale.RetireWorkersWithThreadWorkersKeepsEveryResult") {
  dtask::LocalClusterOptions o;
  o.n_workers = 2;
  o.plugin = TEST_PLUGIN_PATH;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 20s));
  std::vector<int> xs(100);
  for (int i = 0; i < 100; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto fs = client.map(inc, xs);
  auto values = client.gather(fs);
  CHECK(client.retire_workers({"1"}, 60s));
  auto info = client.scheduler_info();
  REQUIRE(info.workers.size() == 1);
  CHECK(info.workers[0].name == "0");
  CHECK(info.workers[0].in_memory >= 100);  // every result now lives on the one left
  CHECK(client.gather(fs) == values);
  CHECK(counter(client, "workers_retired") == 1);
}

// One dtask-worker command, three workers (NAME-0..2, separate processes); retire one of them by
// name and only it leaves; SIGTERM to the command drains the others and it exits 0.
TEST_CASE("Scale.NWorkersGivesThreeWorkersAndTheGroupExitsZeroAfterADrain") {
  StandaloneScheduler s;
  pid_t group = s.worker({"--nworkers", "3", "--name", "grp"}, "group.log");
  int status = -1;
  {
    auto client = dtask::Client::from_scheduler_file(s.file);
    REQUIRE(client.wait_for_workers(3, 30s));
    auto info = client.scheduler_info();
    std::set<std::string> names;
    std::set<long long> pids;
    for (const auto& w : info.workers) {
      names.insert(w.name);
      pids.insert(w.pid);
    }
    CHECK(names == std::set<std::string>{"grp-0", "grp-1", "grp-2"});
    CHECK(pids.size() == 3);

    std::vector<int> xs(90);
    for (int i = 0; i < 90; ++i) xs[static_cast<std::size_t>(i)] = i;
    auto fs = client.map(pid, xs);
    auto computed_by = client.gather(fs);
    CHECK(client.retire_workers({"grp-1"}, 60s));
    CHECK(eventually(client, [](const dtask::SchedulerInfo& i) { return i.workers.size() == 2; }));
    CHECK(wait_exit(group, 0ms) == -1);  // the command runs on with two workers
    std::vector<dtask::Future<long long>> again;
    for (auto& f : fs) again.push_back(client.submit(add64, f, 0LL));
    CHECK(client.gather(again) == computed_by);

    REQUIRE(::kill(group, SIGTERM) == 0);
    status = wait_exit(group, 60s);
    CHECK(eventually(client, [](const dtask::SchedulerInfo& i) { return i.workers.empty(); }));
  }
  INFO(read_file(s.dir + "/group.log"));
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// --lifetime: the worker leaves on its own, its results are handed over (read afterwards, same
// pids), and it exits 0.
TEST_CASE("Scale.LifetimeRetiresTheWorkerWithItsResultsHandedOverAndExitZero") {
  StandaloneScheduler s;
  pid_t stay = s.worker({"--name", "stay"}, "stay.log");
  pid_t brief = s.worker({"--name", "brief", "--lifetime", "3s"}, "brief.log");
  int brief_status = -1;
  {
    auto client = dtask::Client::from_scheduler_file(s.file);
    REQUIRE(client.wait_for_workers(2, 30s));
    const long long brief_pid = pid_of(client.scheduler_info(), "brief");
    REQUIRE(brief_pid > 0);
    dtask::SubmitOptions there;
    there.workers = {"brief"};
    there.allow_other_workers = true;
    std::vector<dtask::Future<long long>> fs;
    for (int i = 0; i < 40; ++i) fs.push_back(client.submit(there, pid, i));
    auto computed_by = client.gather(fs);
    const auto on_brief = std::count(computed_by.begin(), computed_by.end(), brief_pid);
    REQUIRE(on_brief > 0);

    brief_status = wait_exit(brief, 60s);
    CHECK(eventually(client, [](const dtask::SchedulerInfo& i) {
      return i.workers.size() == 1 && i.workers[0].name == "stay";
    }));
    std::vector<dtask::Future<long long>> again;
    for (auto& f : fs) again.push_back(client.submit(add64, f, 0LL));
    CHECK(client.gather(again) == computed_by);  // nothing recomputed, nothing lost
    CHECK(counter(client, "workers_retired") == 1);
    CHECK(counter(client, "results_handed_over") >= static_cast<std::uint64_t>(on_brief));
  }
  ::kill(stay, SIGTERM);
  wait_exit(stay, 30s);
  INFO(read_file(s.dir + "/brief.log"));
  REQUIRE(brief_status != -1);
  CHECK(WIFEXITED(brief_status));
  CHECK(WEXITSTATUS(brief_status) == 0);
}

// --death-timeout: nobody answers at the address; the worker gives up within the bound, non-zero.
TEST_CASE("Scale.DeathTimeoutEndsAWorkerThatCannotReachItsScheduler") {
  const char* exe = std::getenv("DTASK_WORKER_EXE");
  REQUIRE(exe);
  char tmpl[] = "/tmp/dtask-scale-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  const std::string dir = tmpl;
  const auto t0 = std::chrono::steady_clock::now();
  pid_t w = spawn({exe, "--scheduler-address", "tcp://127.0.0.1:9", "--plugin", TEST_PLUGIN_PATH, "--death-timeout", "1s"},
                  dir + "/worker.log");
  const int status = wait_exit(w, 30s);
  const auto took = std::chrono::steady_clock::now() - t0;
  INFO(read_file(dir + "/worker.log"));
  if (status == -1) {
    ::kill(w, SIGKILL);
    wait_exit(w, 5s);
  }
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  CHECK(took < 15s);  // the default bound would be 30 s
  CHECK(read_file(dir + "/worker.log").find("no answer from the scheduler") != std::string::npos);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

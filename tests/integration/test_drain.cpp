// A worker that leaves on SIGTERM hands its results over (nothing recomputed); a dead scheduler stops workers and clients within seconds.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
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

}  // namespace

// SIGTERM to one worker process: it finishes what runs, gives back what has not started, its
// results are copied to the other worker, and it leaves; the job goes on. Outcome checks only:
// every value is exact, and values computed on the leaving worker are still that worker's (a
// recomputed one would carry the other worker's pid).
TEST_CASE("Drain.SIGTERMToAWorkerHandsItsResultsOverAndTheJobGoesOn") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  o.n_workers = 2;
  o.plugin = TEST_PLUGIN_PATH;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 10s));

  // 200 results spread over both workers, each naming the process that computed it.
  std::vector<int> xs(200);
  for (int i = 0; i < 200; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto fs = client.map(pid, xs);
  auto computed_by = client.gather(fs);
  auto info = client.scheduler_info();
  REQUIRE(info.workers.size() == 2);
  long long victim = 0;
  for (const auto& w : info.workers) {
    if (w.name == "0") victim = w.pid;
  }
  REQUIRE(victim > 0);
  const auto on_victim = std::count(computed_by.begin(), computed_by.end(), victim);
  REQUIRE(on_victim > 0);
  REQUIRE(on_victim < 200);
  // A task running there when the signal comes finishes there.
  dtask::SubmitOptions there;
  there.workers = {"0"};
  there.allow_other_workers = true;
  auto slow = client.submit(there, slow_inc, 41, 800);
  std::this_thread::sleep_for(200ms);

  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(static_cast<pid_t>(victim), SIGTERM) == 0);
  CHECK(eventually(client, [](const dtask::SchedulerInfo& i) { return i.workers.size() == 1; }));
  MESSAGE("worker 0 (" << on_victim << " results) left "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()
                       << " ms after SIGTERM");
  CHECK(slow.result(30s) == 42);

  // Dependents read the inputs where they are now: on the remaining worker, as copies.
  std::vector<dtask::Future<long long>> again;
  for (auto& f : fs) again.push_back(client.submit(add64, f, 0LL));
  auto now_read = client.gather(again);
  CHECK(now_read == computed_by);  // nothing was recomputed (same pids), nothing lost
  CHECK(counter(client, "workers_retired") == 1);
  CHECK(counter(client, "results_handed_over") >= static_cast<std::uint64_t>(on_victim));
  // And the job goes on.
  CHECK(client.gather(client.map(inc, std::vector<int>{1, 2, 3})) == std::vector<int>{2, 3, 4});
}

// kill -9 of the scheduler: a worker process and a client waiting for a result both notice that
// its connection closed for good, say so naming the address, and end: the worker exits non-zero,
// the client's result() throws. The times are printed, not checked (the link rule is a unit test,
// WorkerLink.*); the bounds below only keep a broken build from hanging.
TEST_CASE("SchedulerLoss.WorkerAndClientStopWithAClearError") {
  const char* sched_exe = std::getenv("DTASK_SCHEDULER_EXE");
  const char* worker_exe = std::getenv("DTASK_WORKER_EXE");
  REQUIRE(sched_exe);
  REQUIRE(worker_exe);
  char tmpl[] = "/tmp/dtask-drain-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  const std::string dir = tmpl;
  const std::string file = dir + "/scheduler.json";
  pid_t sched = spawn({sched_exe, "--scheduler-file", file, "--host", "127.0.0.1"}, dir + "/scheduler.log");
  for (int i = 0; i < 500 && !std::filesystem::exists(file); ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(std::filesystem::exists(file));
  pid_t worker = spawn({worker_exe, "--scheduler-file", file, "--plugin", TEST_PLUGIN_PATH, "--name", "w"},
                       dir + "/worker.log");
  int worker_status = -1;
  {
    auto client = dtask::Client::from_scheduler_file(file);
    REQUIRE(client.wait_for_workers(1, 10s));
    const std::string address = client.scheduler_address();
    CHECK(client.submit(inc, 1).result() == 2);
    auto pending = client.submit(slow_inc, 1, 60000);
    std::this_thread::sleep_for(200ms);

    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(::kill(sched, SIGKILL) == 0);
    ::waitpid(sched, nullptr, 0);
    std::string error;
    try {
      pending.result(30s);
    } catch (const std::exception& e) {
      error = e.what();
    }
    const auto client_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    worker_status = wait_exit(worker, 60s);
    const auto worker_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    MESSAGE("client noticed after " << client_ms.count() << " ms, worker gone after " << worker_ms.count() << " ms");
    CHECK(error.find("lost the scheduler at " + address) != std::string::npos);
    CHECK(error.find("its connection closed") != std::string::npos);
    REQUIRE(worker_status != -1);
    CHECK(WIFEXITED(worker_status));
    CHECK(WEXITSTATUS(worker_status) != 0);
  }
  const std::string log = read_file(dir + "/worker.log");
  CHECK(log.find("lost the scheduler: its connection closed") != std::string::npos);
  CHECK(log.find("tcp://127.0.0.1:") != std::string::npos);  // the line names the address
  if (worker_status == -1) {
    ::kill(worker, SIGKILL);
    ::waitpid(worker, nullptr, 0);
  }
  std::filesystem::remove_all(dir);
}

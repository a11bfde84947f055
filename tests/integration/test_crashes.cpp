// Tasks that kill their worker process, on a LocalCluster of supervised dtask-worker processes: restarts, retries, KilledWorker.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <dtask/dtask.hpp>

#include "eventually.hpp"
#include "scratch_dir.hpp"

#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

// A cluster of `n` single-threaded worker processes (each under its dtask-worker supervisor).
struct Fixture {
  dtask::LocalCluster cluster;
  dtask::Client client;
  explicit Fixture(int n = 2)
      : cluster([&] {
          dtask::LocalClusterOptions o;
          o.n_workers = n;
          o.processes = true;
          o.plugin = TEST_PLUGIN_PATH;
          // The supervisors' restart lines and the scheduler's KilledWorker line are expected here.
          o.log_level = "error";
          return o;
        }()),
        client(cluster) {
    REQUIRE(client.wait_for_workers(static_cast<std::size_t>(n), 10s));
  }
};

// The pid of the live worker named `name` (0 if none is registered under it).
long pid_of(const dtask::SchedulerInfo& info, const std::string& name) {
  for (const auto& w : info.workers) {
    if (w.name == name) return w.pid;
  }
  return 0;
}

using dtask::test::eventually;

bool process_gone(long pid) {
  for (int i = 0; i < 500; ++i) {
    if (!std::filesystem::exists("/proc/" + std::to_string(pid))) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

dtask::SubmitOptions on_worker(const std::string& name) {
  dtask::SubmitOptions o;
  o.workers = {name};
  return o;
}

}  // namespace

// kill -9 of a worker process mid-graph: its supervisor starts a new incarnation under the same
// name, which registers again (and the scheduler drops the dead one at once); the results that
// lived only there are recomputed, every value is exact, and close() leaves no process behind.
TEST_CASE("Crashes.AKilledWorkerComesBackUnderItsNameAndNothingIsLost") {
  std::vector<long> pids;
  {
    Fixture f(2);
    std::vector<int> xs(400);
    std::iota(xs.begin(), xs.end(), 0);
    auto firsts = f.client.map(inc, xs);
    REQUIRE(f.client.wait(firsts, 30s));
    auto seconds = f.client.map(slow_inc, firsts, std::vector<int>(xs.size(), 2));
    const long victim = pid_of(f.client.scheduler_info(), "0");
    REQUIRE(victim > 0);
    REQUIRE(victim != static_cast<long>(::getpid()));
    REQUIRE(::kill(static_cast<pid_t>(victim), SIGKILL) == 0);
    const auto killed_at = std::chrono::steady_clock::now();
    long successor = 0;
    while (std::chrono::steady_clock::now() - killed_at < 20s) {
      successor = pid_of(f.client.scheduler_info(), "0");
      if (successor != 0 && successor != victim) break;
      std::this_thread::sleep_for(2ms);
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
    MESSAGE("kill -9 of worker '0' -> registered again in " << took.count() << " ms");
    REQUIRE(successor != 0);
    REQUIRE(successor != victim);
    // A successor under the same name is the outcome: only a supervisor's restart makes one.
    // How fast the death is noticed is a figure (printed above), not a check here; the rule that
    // a death report removes the old incarnation at once is a unit test (test_scheduler_failures).
    auto out = f.client.gather(seconds);
    for (std::size_t i = 0; i < xs.size(); ++i) CHECK(out[i] == xs[i] + 2);
    // The new incarnation takes work under the old name.
    CHECK(f.client.submit(on_worker("0"), pid, 0).result(30s) == successor);
    CHECK(f.client.scheduler_info().workers.size() == 2);
    for (const auto& w : f.client.scheduler_info().workers) pids.push_back(w.pid);
  }
  for (long p : pids) CHECK(process_gone(p));
}

// Tasks that crash their worker (SIGSEGV, abort()) on their first two attempts and then succeed
// return their values; ordinary tasks queued on the dying workers are not blamed for the deaths
// (each incarnation's supervisor reports only the task that was running) and come out exact.
TEST_CASE("Crashes.TasksThatCrashTwiceThenSucceedReturnTheirValues") {
  dtask::test::ScratchDir dir("dtask-crashes");  // the crash tasks' attempt counters
  Fixture f(2);
  auto segv = f.client.submit(crash_until, dir.path + "/segv", 2);
  auto abrt = f.client.submit(sigabrt_until, dir.path + "/abort", 2);
  std::vector<int> xs(200);
  std::iota(xs.begin(), xs.end(), 0);
  auto others = f.client.map(slow_inc, xs, std::vector<int>(xs.size(), 1));
  CHECK(segv.result(60s) == 2);
  CHECK(abrt.result(60s) == 2);
  auto out = f.client.gather(others);
  for (std::size_t i = 0; i < xs.size(); ++i) CHECK(out[i] == xs[i] + 1);
  // Both workers are back under their names.
  CHECK(eventually(f.client, [](const dtask::SchedulerInfo& i) {
    return i.workers.size() == 2 && pid_of(i, "0") != 0 && pid_of(i, "1") != 0;
  }));
}

// A task that always segfaults ends, after three workers died running it, as an error naming the
// task and the signal; its dependents fail with it; the rest of the graph completes; the
// workers are back afterwards.
TEST_CASE("Crashes.ATaskThatAlwaysCrashesFailsAsKilledWorkerAndTheRestCompletes") {
  Fixture f(2);
  auto doomed = f.client.submit(always_crash, 1);
  auto dependent = f.client.submit(inc, doomed);
  std::vector<int> xs(200);
  std::iota(xs.begin(), xs.end(), 0);
  auto others = f.client.map(slow_inc, xs, std::vector<int>(xs.size(), 1));
  const auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    doomed.result(60s);
    FAIL("a task that always crashes returned a value");
  } catch (const dtask::TaskError& e) {
    message = e.what();
  }
  MESSAGE("always_crash failed after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()
          << " ms: " << message);
  CHECK(message.find("always_crash") != std::string::npos);
  CHECK(message.find("KilledWorker") != std::string::npos);
  CHECK(message.find("SIGSEGV") != std::string::npos);
  CHECK_THROWS_AS(dependent.result(30s), dtask::TaskError);
  auto out = f.client.gather(others);
  for (std::size_t i = 0; i < xs.size(); ++i) CHECK(out[i] == xs[i] + 1);
  CHECK(eventually(f.client, [](const dtask::SchedulerInfo& i) { return i.workers.size() == 2; }));
  CHECK(f.client.submit(inc, 41).result(30s) == 42);
}

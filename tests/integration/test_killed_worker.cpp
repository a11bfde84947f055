// End to end on a LocalCluster of worker processes: a task whose worker dies fails as KilledWorker, the rest goes on.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include <dtask/dtask.hpp>

#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

dtask::SubmitOptions on_worker(const std::string& name) {
  dtask::SubmitOptions o;
  o.workers = {name};
  return o;
}

// The pid of the live worker named `name` that has a task placed on it, or 0.
long busy_worker_pid(dtask::Client& c, const std::string& name) {
  for (const auto& w : c.scheduler_info().workers) {
    if (w.name == name && w.processing > 0) return w.pid;
  }
  return 0;
}

}  // namespace

// allowed_failures = 1: the first death of a worker running the task is its last. Worker "0" is
// killed (kill -9) while the slow task pinned to it is placed there, until the future has its
// answer: it is the KilledWorker error (however the death was noticed: the heartbeat timeout, or
// the restarted worker's report), its dependent fails with it, and a task on the other worker
// completes. Killing again covers the one race of a supervised worker: killed before the task
// started, the task is not suspected and runs again on the restarted "0".
TEST_CASE("KilledWorker.ATaskWhoseWorkerDiesFailsAndTheRestGoesOn") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  o.n_workers = 2;
  o.plugin = TEST_PLUGIN_PATH;
  o.allowed_failures = 1;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 10s));
  auto slow = client.submit(on_worker("0"), slow_inc, 1, 600000);
  auto dep = client.submit(inc, slow);
  int kills = 0;
  for (int i = 0; i < 6000 && !slow.done(); ++i) {
    if (long p = busy_worker_pid(client, "0"); p > 0 && kills < 5) {
      REQUIRE(::kill(static_cast<pid_t>(p), SIGKILL) == 0);
      ++kills;
      // Wait until that incarnation is gone from the scheduler (or the answer came).
      for (int j = 0; j < 3000 && !slow.done() && busy_worker_pid(client, "0") == p; ++j) std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(kills >= 1);
  REQUIRE(slow.done());
  try {
    slow.result(1s);
    FAIL("the task of a dead worker returned a value");
  } catch (const dtask::TaskError& e) {
    CHECK(e.message().rfind("KilledWorker: task '" + slow.key() + "' was running on 1 worker that died", 0) == 0);
    CHECK(e.task() == "slow_inc");
  }
  try {
    dep.result(30s);
    FAIL("a dependent of a KilledWorker task returned a value");
  } catch (const dtask::TaskError& e) {
    CHECK(e.message().rfind("KilledWorker: task '" + slow.key() + "'", 0) == 0);  // what actually failed
  }
  CHECK(client.submit(on_worker("1"), inc, 41).result(30s) == 42);
  CHECK(client.submit(inc, 1).result(30s) == 2);
}

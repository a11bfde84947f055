// End-to-end on a LocalCluster: the seed's chains, big graphs, failures, placement, bulk data.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <map>
#include <optional>
#include <set>

#include <dtask/dtask.hpp>

#include "eventually.hpp"

#include "client/internal.hpp"
#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

// Every case runs through this: a fresh cluster of `n` single-threaded workers and a client.
struct Fixture {
  dtask::LocalCluster cluster;
  dtask::Client client;
  explicit Fixture(int n = 2, dtask::LocalClusterOptions o = {})
      : cluster([&] {
          o.n_workers = n;
          o.plugin = TEST_PLUGIN_PATH;
          return o;
        }()),
        client(cluster) {
    REQUIRE(client.wait_for_workers(static_cast<std::size_t>(n), 10s));
  }
};

// Submit options that pin a task to the worker of that name ("0", "1", ...).
dtask::SubmitOptions on_worker(const std::string& name) {
  dtask::SubmitOptions o;
  o.workers = {name};
  return o;
}

using dtask::test::eventually;

// How many tasks the scheduler has in `state` (0 when it names none).
std::size_t in_state(const dtask::SchedulerInfo& i, const std::string& state) {
  auto it = i.tasks_by_state.find(state);
  return it == i.tasks_by_state.end() ? 0 : it->second;
}

// Every future released: the scheduler forgets every key (nothing left behind by held batches,
// receipts or early starts).
bool scheduler_forgets_everything(dtask::Client& c) {
  return eventually(c, [](const dtask::SchedulerInfo& i) { return i.n_tasks == 0; });
}

}  // namespace

TEST_CASE("LocalCluster.Chains.256") {
  Fixture f(2);
  std::vector<dtask::Delayed<int>> zs;
  for (int i = 0; i < 256; ++i) {
    auto x = dtask::delayed(inc, i);
    auto y = dtask::delayed(dec, x);
    zs.push_back(dtask::delayed(add, x, y));
  }
  std::vector<int> result = f.client.compute(zs);
  REQUIRE(result.size() == 256);
  for (int i = 0; i < 256; ++i) CHECK(result[static_cast<std::size_t>(i)] == 2 * i + 1);
}

TEST_CASE("LocalCluster.Submit.ResultGatherWaitAsCompleted") {
  Fixture f(2);
  auto a = f.client.submit(inc, 10);
  CHECK(a.result() == 11);
  auto b = f.client.submit(add, a, 5);  // a future as an argument
  CHECK(b.result() == 16);
  auto futures = f.client.map(inc, std::vector<int>{1, 2, 3, 4});
  CHECK(f.client.wait(futures, 10s));
  CHECK(f.client.gather(futures) == std::vector<int>{2, 3, 4, 5});
  auto pairs = f.client.map(add, std::vector<int>{1, 2}, std::vector<int>{10, 20});
  CHECK(f.client.gather(pairs) == std::vector<int>{11, 22});
  std::multiset<int> seen;
  for (const auto& fut : dtask::as_completed(f.client.map(slow_inc, std::vector<int>{3, 1, 2}, std::vector<int>{30, 10, 20}))) {
    seen.insert(fut.result());
  }
  CHECK(seen == std::multiset<int>{2, 3, 4});
  CHECK(f.client.submit(concat, std::string("dt"), std::string("ask")).result() == "dtask");
  auto v = f.client.submit(nothing, 1);
  v.result();
  CHECK(v.status() == dtask::FutureStatus::finished);
  dtask::SubmitOptions keyed;
  keyed.key = "my-explicit-key";
  auto k = f.client.submit(keyed, inc, 1);
  CHECK(k.key() == "my-explicit-key");
  CHECK(k.result() == 2);
}

// The fast paths (FastPaths: pushed results with receipts, early start, spinning waiters) change
// how many hops a result takes, never the result: these cases assert outcomes only and pass with
// DTASK_FAST_PATHS=none as well. Which path a result took is timing's choice; the rules that
// choose are unit-tested (tests/unit/test_client_rules.cpp and the worker's and scheduler's).
TEST_CASE("LocalCluster.Submit.SubmitResultLoopGivesRightValuesAndLeavesNothingBehind") {
  Fixture f(2);
  int v = 0;
  for (int i = 0; i < 300; ++i) v = f.client.submit(inc, v).result();
  CHECK(v == 300);
  // A result from such a loop is an input like any other, also while it may still be running,
  // on either worker.
  auto a = f.client.submit(inc, 41);
  auto b = f.client.submit(add, a, a);
  CHECK(b.result() == 84);
  CHECK(a.result() == 42);
  CHECK(f.client.submit(on_worker("0"), add, a, 8).result() == 50);
  CHECK(f.client.submit(on_worker("1"), add, a, 9).result() == 51);
  // Big submissions give right values too.
  std::vector<int> xs(1000);
  for (int i = 0; i < 1000; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto ys = f.client.gather(f.client.map(inc, xs));
  REQUIRE(ys.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(ys[static_cast<std::size_t>(i)] == i + 1);
  a = {};
  b = {};
  CHECK(scheduler_forgets_everything(f.client));
}

// A client that keeps a result and goes quiet: the scheduler still learns the task is done
// (from the client's receipt or the worker's TaskDone), and a result is an input afterwards.
TEST_CASE("LocalCluster.Submit.AQuietClientsResultsReachTheScheduler") {
  Fixture f(1);
  dtask::Client watcher(f.cluster);  // looks at the scheduler without speaking for f.client
  std::vector<dtask::Future<int>> kept;
  for (int i = 0; i < 20; ++i) {
    kept.push_back(f.client.submit(inc, i));
    REQUIRE(kept.back().result() == i + 1);
  }
  CHECK(eventually(watcher, [](const dtask::SchedulerInfo& i) {
    return i.workers.size() == 1 && i.workers[0].processing == 0 && i.workers[0].in_memory == 20 &&
           i.n_tasks == 20 && in_state(i, "memory") == 20;
  }));
  // Each kept result is an input to a task on the worker.
  for (int i = 0; i < 20; ++i) CHECK(f.client.submit(add, kept[static_cast<std::size_t>(i)], 100).result() == i + 101);
  kept.clear();
  CHECK(scheduler_forgets_everything(watcher));
}

// With two threads and one busy with a slow task, a quick submit does not wait behind it,
// however it reaches the worker (an early start the worker declines, or the scheduler's
// placement on the free thread).
TEST_CASE("LocalCluster.Submit.AQuickTaskDoesNotWaitBehindASlowOne") {
  dtask::LocalClusterOptions o;
  o.threads_per_worker = 2;
  Fixture f(1, o);
  for (int i = 0; i < 20; ++i) REQUIRE(f.client.submit(inc, i).result() == i + 1);
  auto slow = f.client.submit(slow_inc, 0, 8000);
  REQUIRE(eventually(f.client, [](const dtask::SchedulerInfo& i) { return in_state(i, "processing") == 1; }));
  CHECK(f.client.submit(inc, 5).result(30s) == 6);
  CHECK_FALSE(slow.done());  // it came back while the slow one was still running
  CHECK(slow.result(30s) == 1);
  // A failing task fails as itself, however it was started.
  for (int i = 0; i < 20; ++i) REQUIRE(f.client.submit(fail_if_negative, i).result() == i);
  auto bad = f.client.submit(fail_if_negative, -3);
  CHECK_THROWS_WITH_AS(bad.result(10s), doctest::Contains("negative input -3"), dtask::TaskError);
  CHECK(f.client.submit(inc, 1).result(10s) == 2);
}

// The worker that ran the last results (where the next one would be started early) dies: the
// next submit still gets its result, from the other worker.
TEST_CASE("LocalCluster.Submit.TheLastWorkerDies") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  Fixture f(2, o);
  long long target = 0;
  for (int i = 0; i < 40; ++i) target = f.client.submit(pid, i).result();
  // It is a worker process (it keeps its name after the huge-page re-exec), not this one.
  REQUIRE(target != static_cast<long long>(getpid()));
  std::ifstream comm("/proc/" + std::to_string(target) + "/comm");
  std::string name;
  std::getline(comm, name);
  REQUIRE(name == "dtask-worker");
  REQUIRE(::kill(static_cast<pid_t>(target), SIGKILL) == 0);
  // (The scheduler may first place it on the dead worker, as any task, until it notices the
  // silence: worker_timeout_ms, 5 s.)
  CHECK(f.client.submit(inc, 5).result(60s) == 6);
  CHECK(f.client.submit(pid, 0).result(60s) != target);
  // Its supervisor (the dtask-worker parent) starts it again under the same name.
  CHECK(eventually(f.client, [target](const dtask::SchedulerInfo& i) {
    return i.workers.size() == 2 && std::none_of(i.workers.begin(), i.workers.end(),
                                                 [target](const dtask::WorkerInfo& w) { return w.pid == target; });
  }));
}

// A switched-off fast path is never taken: the client asks no worker to push a result or to
// start a task early, so neither the client nor the scheduler counts one (nothing here depends
// on timing: with the switch off the count can only be 0).
TEST_CASE("LocalCluster.FastPaths.SwitchedOffAreNeverTaken") {
  dtask::FastPaths no_early = dtask::FastPaths::all();
  no_early.early_start = false;
  for (const auto& paths : {no_early, dtask::FastPaths::none()}) {
    CAPTURE(paths.to_string());
    dtask::LocalClusterOptions o;
    o.fast_paths = paths;
    Fixture f(1, o);
    int v = 0;
    for (int i = 0; i < 100; ++i) v = f.client.submit(inc, v).result();
    CHECK(v == 100);
    auto c = dtask::detail::ClientInternals::counters(f.client);
    CHECK(c.early_starts == 0);
    CHECK(c.early_not_started == 0);
    auto info = f.client.scheduler_info();
    CHECK(info.placed_where_started_early == 0);
    if (!paths.push_results) {
      CHECK(c.results_pushed == 0);
      CHECK(info.completions_reported_by_clients == 0);
    }
  }
}

// Issue 14's load spreading: tasks submitted one at a time on an idle cluster visit every worker
// (all 220 of the seed's submit(hostname).result() calls once ran on one), with the early start
// on (its targets taken in turn) and with every fast path off (the scheduler's rotating deal).
// Which path ran them is the unit rules' business (ClientRules.EarlyTargets, Placement.Dispatch).
TEST_CASE("LocalCluster.Placement.SequentialSubmitsSpreadOverIdleWorkers") {
  for (const auto& paths : {dtask::FastPaths::all(), dtask::FastPaths::none()}) {
    CAPTURE(paths.to_string());
    dtask::LocalClusterOptions o;
    o.fast_paths = paths;
    Fixture f(4, o);
    std::map<std::string, int> ran_on;
    for (int i = 0; i < 200; ++i) ++ran_on[f.client.submit(worker_name, i).result()];
    CHECK(ran_on.size() == 4);
    for (const auto& [name, n] : ran_on) {
      CAPTURE(name);
      CHECK(n <= 100);
    }
  }
}

// An empty Future (default-constructed or moved from) or Delayed is a clear error, not a crash.
TEST_CASE("LocalCluster.Submit.EmptyFuturesAreAClearError") {
  Fixture f(1);
  dtask::Future<int> empty;
  CHECK_FALSE(empty.valid());
  CHECK_THROWS_WITH_AS(f.client.submit(inc, empty), doctest::Contains("empty Future"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(empty.result(), doctest::Contains("Future::result()"), std::invalid_argument);
  CHECK_THROWS_AS(empty.result(1s), std::invalid_argument);
  CHECK_THROWS_WITH_AS(empty.status(), doctest::Contains("Future::status()"), std::invalid_argument);
  CHECK_THROWS_AS(empty.done(), std::invalid_argument);
  CHECK_THROWS_AS(empty.key(), std::invalid_argument);
  CHECK_THROWS_AS(empty.error_message(), std::invalid_argument);
  auto real = f.client.submit(inc, 1);
  std::vector<dtask::Future<int>> some{real, empty};
  CHECK_THROWS_AS(f.client.gather(some), std::invalid_argument);
  CHECK_THROWS_AS(f.client.wait(some, 1s), std::invalid_argument);
  CHECK_THROWS_AS(f.client.cancel(empty), std::invalid_argument);
  CHECK_THROWS_AS(f.client.submit(add, real, empty), std::invalid_argument);
  std::vector<dtask::Future<long long>> empties(2);
  CHECK_THROWS_AS(f.client.submit(sum_list, empties), std::invalid_argument);
  auto moved = std::move(real);
  CHECK_THROWS_AS(real.result(), std::invalid_argument);  // NOLINT(bugprone-use-after-move): the point
  dtask::Delayed<int> no_node;
  CHECK_FALSE(no_node.valid());
  CHECK_THROWS_AS(dtask::delayed(inc, no_node), std::invalid_argument);
  CHECK_THROWS_AS(f.client.compute(no_node), std::invalid_argument);
  // Nothing was sent for any of these: the client and the cluster go on.
  CHECK(moved.result() == 2);
  CHECK(f.client.submit(inc, moved).result() == 3);
}

// scheduler_info() says what the scheduler holds, typed.
TEST_CASE("LocalCluster.Info.SchedulerInfoIsTyped") {
  Fixture f(2);
  auto info = f.client.scheduler_info();
  CHECK(info.address == f.client.scheduler_address());
  REQUIRE(info.workers.size() == 2);
  for (const auto& w : info.workers) {
    CHECK(w.nthreads == 1);
    CHECK(w.processing == 0);
    CHECK(w.in_memory == 0);
    CHECK(w.rank == -1);
  }
  CHECK(info.n_tasks == 0);
  auto kept = f.client.map(inc, std::vector<int>{1, 2, 3});
  CHECK(f.client.gather(kept) == std::vector<int>{2, 3, 4});
  CHECK(eventually(f.client, [](const dtask::SchedulerInfo& i) {
    std::size_t held = 0;
    for (const auto& w : i.workers) held += w.in_memory;
    return i.n_tasks == 3 && in_state(i, "memory") == 3 && held == 3;
  }));
  kept.clear();
  CHECK(scheduler_forgets_everything(f.client));
}

TEST_CASE("LocalCluster.Worker.QuickTaskTurnedSlowDoesNotSilenceIt") {
  Fixture f(1);
  // Quick every time so far: the worker now runs slow_inc on its event loop thread...
  for (int i = 0; i < 20; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result() == i + 1);
  // ...and this call takes longer than the scheduler waits for a silent worker (5 s). The loop
  // must move to another thread and go on answering, or the only worker is declared dead and
  // the result never comes.
  auto slow = f.client.submit(slow_inc, 100, 6000);
  CHECK(slow.result(20s) == 101);
  CHECK(f.client.scheduler_info().workers.size() == 1);
  CHECK(f.client.submit(inc, 1).result(20s) == 2);
  CHECK(f.client.submit(slow_inc, 7, 0).result(20s) == 8);
}

// Quick tasks that now and then overrun (what a preempted quick task looks like to a worker
// that runs quick tasks on its loop thread) give right values throughout; the strike rules that
// decide where they run are the worker's unit tests.
TEST_CASE("LocalCluster.Worker.QuickTasksThatSometimesOverrunGiveRightValues") {
  Fixture f(1);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 30; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result(30s) == i + 1);
    CHECK(f.client.submit(slow_inc, round, 3).result(30s) == round + 1);
  }
  CHECK(f.client.submit(inc, 1).result(30s) == 2);
  CHECK(scheduler_forgets_everything(f.client));
}

TEST_CASE("LocalCluster.NoOp.100000") {
  Fixture f(2);
  std::vector<int> xs(100000);
  for (int i = 0; i < 100000; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto futures = f.client.map(noop, xs);
  auto out = f.client.gather(futures);
  REQUIRE(out.size() == xs.size());
  CHECK(out == xs);
}

TEST_CASE("LocalCluster.TreeReduction.32768") {
  Fixture f(2);
  const int n = 1 << 15;
  std::vector<dtask::Delayed<long long>> level;
  for (int i = 0; i < n; ++i) level.push_back(dtask::delayed(add64, static_cast<long long>(i), 0LL));
  while (level.size() > 1) {
    std::vector<dtask::Delayed<long long>> next;
    for (std::size_t i = 0; i + 1 < level.size(); i += 2) next.push_back(dtask::delayed(add64, level[i], level[i + 1]));
    level = std::move(next);
  }
  long long total = f.client.compute(level[0]);
  CHECK(total == static_cast<long long>(n) * (n - 1) / 2);
}

TEST_CASE("LocalCluster.Failure.ErrorReachesClientOthersComplete") {
  Fixture f(2);
  std::vector<int> xs{1, 2, -3, 4};
  auto futures = f.client.map(fail_if_negative, xs);
  CHECK(f.client.wait(futures, 10s));
  CHECK(futures[0].result() == 1);
  CHECK(futures[3].result() == 4);
  CHECK(futures[2].status() == dtask::FutureStatus::error);
  try {
    futures[2].result();
    FAIL("expected a TaskError");
  } catch (const dtask::TaskError& e) {
    CHECK(e.message() == "negative input -3");
    CHECK(e.task() == "fail_if_negative");
    CHECK(e.key() == futures[2].key());
    CHECK(std::string(e.what()).find("negative input -3") != std::string::npos);
  }
  // A dependent of a failed task fails with the original error; gather rethrows it.
  auto dep = f.client.submit(inc, futures[2]);
  CHECK_THROWS_AS(dep.result(), dtask::TaskError);
  CHECK_THROWS_WITH_AS(f.client.gather(futures), doctest::Contains("negative input -3"), dtask::TaskError);
  // And the cluster is fine afterwards.
  CHECK(f.client.submit(inc, 1).result() == 2);
}

TEST_CASE("LocalCluster.Retries.FlakyTaskSucceeds") {
  Fixture f(1);
  dtask::SubmitOptions o;
  o.retries = 3;
  CHECK(f.client.submit(o, flaky, 3).result() == 3);
}

TEST_CASE("LocalCluster.Placement.WorkersPinsToNamedWorker") {
  Fixture f(3);
  const auto on1 = on_worker("1");
  std::vector<dtask::Future<std::string>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(f.client.submit(on1, worker_name, i));
  auto names_ran = f.client.gather(fs);
  CHECK(names_ran == std::vector<std::string>(20, "1"));
  // The scheduler's view of the three workers.
  auto info = f.client.scheduler_info();
  REQUIRE(info.workers.size() == 3);
  std::set<std::string> names;
  for (auto& w : info.workers) {
    names.insert(w.name);
    CHECK(w.nthreads == 1);
    CHECK(w.address.rfind("tcp://127.0.0.1:", 0) == 0);
    CHECK_FALSE(w.host.empty());
  }
  CHECK(names == std::set<std::string>{"0", "1", "2"});
}

TEST_CASE("LocalCluster.Placement.ResourcesAndPriorities") {
  dtask::LocalClusterOptions o;
  o.worker_resources = {{}, {{"GPU", 2}}};
  Fixture f(2, o);
  dtask::SubmitOptions gpu;
  gpu.resources = {{"GPU", 1}};
  std::vector<dtask::Future<std::string>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(f.client.submit(gpu, worker_name, i));
  CHECK(f.client.gather(fs) == std::vector<std::string>(10, "1"));
  dtask::SubmitOptions impossible;
  impossible.workers = {"no-such-worker"};
  impossible.allow_other_workers = true;
  CHECK(f.client.submit(impossible, inc, 1).result() == 2);
}

TEST_CASE("LocalCluster.Transfer.64MiBBetweenWorkers") {
  Fixture f(2);
  const auto on0 = on_worker("0"), on1 = on_worker("1");
  const long long n = 64LL << 20;
  auto big = f.client.submit(on0, make_bytes, n);
  auto checked = f.client.submit(on1, check_bytes, big);
  CHECK(checked.result() == "1:" + std::to_string(n));
  // And to the client, intact.
  auto local = big.result();
  REQUIRE(local.size() == static_cast<std::size_t>(n));
  CHECK(local[12345] == static_cast<std::uint8_t>((12345u * 2654435761u) >> 13));
  auto v = f.client.submit(linspace, 1000);
  CHECK(f.client.submit(sum_doubles, v).result() == doctest::Approx(249750.0));
}

TEST_CASE("LocalCluster.Transfer.SpanArgumentsReadInPlace") {
  Fixture f(2);
  const auto on0 = on_worker("0"), on1 = on_worker("1");
  const long long n = 8LL << 20;
  auto big = f.client.submit(on0, make_bytes, n);
  CHECK(f.client.submit(on1, check_bytes_view, big).result() == "1:" + std::to_string(n));
  CHECK(f.client.submit(on0, check_bytes_view, big).result() == "0:" + std::to_string(n));
  // Small results travel inline in the scheduler's messages; a span still sees them.
  auto v = f.client.submit(linspace, 7);
  CHECK(f.client.submit(sum_doubles_view, v).result() == doctest::Approx(10.5));
  // A value from the client is encoded like a vector.
  std::vector<double> local = {1.5, 2.5, 3.0};
  CHECK(f.client.submit(sum_doubles_view, std::span<const double>(local)).result() == doctest::Approx(7.0));
  CHECK(f.client.submit(sum_doubles_view, local).result() == doctest::Approx(7.0));
  CHECK(f.client.submit(sum_doubles_view, std::vector<double>{}).result() == doctest::Approx(0.0));
  // By name with a plain MessagePack array: not viewable in place, decoded for the call.
  auto named = f.client.submit_named<double>({}, "sum_doubles_view", nlohmann::json::array({1.5, 2.5, 4.0}));
  CHECK(named.result() == doctest::Approx(8.0));
  // The wrong element type is an error for the client, not garbage.
  auto bytes = f.client.submit(make_bytes, 16LL);
  CHECK_THROWS_WITH_AS(f.client.submit(sum_doubles_view, bytes).result(),
                       doctest::Contains("does not match the expected element type"), dtask::TaskError);
}

TEST_CASE("LocalCluster.Errors.UnknownTaskNameIsClear") {
  Fixture f(1);
  auto fut = f.client.submit_named<int>({}, "no_such_task", 1);
  CHECK_THROWS_WITH_AS(fut.result(), doctest::Contains("unknown task name 'no_such_task'"), dtask::TaskError);
  try {
    fut.result();
    FAIL("expected a TaskError");
  } catch (const dtask::TaskError& e) {
    CHECK(e.message().find("provides: add,") != std::string::npos);
  }
  // Wrong argument types are a task error too, not a crash.
  auto bad = f.client.submit_named<int>({}, "inc", std::string("not a number"));
  CHECK_THROWS_AS(bad.result(), dtask::TaskError);
  auto wrong_arity = f.client.submit_named<int>({}, "add", 1);
  CHECK_THROWS_WITH_AS(wrong_arity.result(), doctest::Contains("expects 2 argument(s), got 1"), dtask::TaskError);
  CHECK(f.client.submit(inc, 41).result() == 42);
}

TEST_CASE("LocalCluster.Errors.BadPluginsAreRefusedClearly") {
  dtask::LocalClusterOptions o;
  o.plugin = "/nonexistent/libnothing.so";
  CHECK_THROWS_WITH(dtask::LocalCluster{o}, doctest::Contains("not found"));
  o.plugin = NOT_A_PLUGIN_PATH;
  CHECK_THROWS_WITH(dtask::LocalCluster{o}, doctest::Contains("is not a dtask plugin"));
  o.plugin = BAD_VERSION_PLUGIN_PATH;
  CHECK_THROWS_WITH(dtask::LocalCluster{o}, doctest::Contains("plugin API version 2"));
}

TEST_CASE("LocalCluster.Lifecycle.CancelAndReleaseFreeTheCluster") {
  Fixture f(1);
  {
    auto slow = f.client.submit(slow_inc, 1, 300);
    auto after = f.client.submit(inc, slow);
    f.client.cancel(after);
    CHECK(after.status() == dtask::FutureStatus::cancelled);
    CHECK_THROWS_AS(after.result(), dtask::CancelledError);
    CHECK(slow.result() == 2);
    auto many = f.client.map(inc, std::vector<int>(1000, 1));
    CHECK(f.client.wait(many, 10s));
  }
  // Every future above is gone: the scheduler forgets all of it.
  CHECK(scheduler_forgets_everything(f.client));
  auto info = f.client.scheduler_info();
  std::size_t in_states = 0;
  for (auto& [state, n] : info.tasks_by_state) in_states += n;
  CHECK(in_states == 0);
}

TEST_CASE("LocalCluster.Processes.WorkersAsChildProcesses") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  Fixture f(2, o);
  // Two worker processes, neither of them this one.
  auto info = f.client.scheduler_info();
  REQUIRE(info.workers.size() == 2);
  std::set<long long> worker_pids;
  for (const auto& w : info.workers) {
    CHECK(w.pid > 0);
    CHECK(w.pid != static_cast<long>(getpid()));
    worker_pids.insert(w.pid);
    // A task placed on that worker runs in that process.
    CHECK(f.client.submit(on_worker(w.name), pid, 0).result() == w.pid);
  }
  CHECK(worker_pids.size() == 2);
  // Unpinned tasks run in those processes only.
  for (long long p : f.client.gather(f.client.map(pid, std::vector<int>(50, 0)))) CHECK(worker_pids.count(p) == 1);
  CHECK(f.client.compute(dtask::delayed(add, dtask::delayed(inc, 1), dtask::delayed(dec, 10))) == 11);
}

// Workers re-execute themselves with glibc's hugetlb malloc tunable (common/hugepages.hpp), so
// the buffers big transfers land in are advised for transparent huge pages; DTASK_HUGEPAGES=0
// opts out. Only meaningful where THP is in madvise mode (the default on Debian).
TEST_CASE("LocalCluster.Processes.LargeBuffersAdvisedForHugePages") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  MESSAGE("built with AddressSanitizer or ThreadSanitizer, whose malloc ignores glibc's tunables: nothing to check");
  return;
#endif
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(thp, mode);
  if (mode.find("[madvise]") == std::string::npos) {
    MESSAGE("transparent huge pages are not in madvise mode here (" << mode << "): nothing to check");
    return;
  }
  const char* before = std::getenv("GLIBC_TUNABLES");
  if (before && std::string(before).find("glibc.malloc.hugetlb") != std::string::npos) {
    MESSAGE("GLIBC_TUNABLES already sets glibc.malloc.hugetlb in this environment: nothing to check");
    return;
  }
  dtask::LocalClusterOptions o;
  o.processes = true;
  {
    Fixture f(1, o);
    CHECK(f.client.submit(malloc_hugepage_advised, 16LL << 20).result() == true);
  }
  ::setenv("DTASK_HUGEPAGES", "0", 1);
  {
    Fixture f(1, o);
    CHECK(f.client.submit(malloc_hugepage_advised, 16LL << 20).result() == false);
  }
  ::unsetenv("DTASK_HUGEPAGES");
}

TEST_CASE("LocalCluster.Security.WrongKeysCannotConnect") {
  dtask::LocalClusterOptions o;
  o.n_workers = 1;
  o.plugin = TEST_PLUGIN_PATH;
  dtask::LocalCluster cluster(o);
  auto opts = cluster.connect_options();
  opts.security = dtask::Security::generate();  // a stranger's keys
  opts.security.server_public = cluster.connect_options().security.server_public;
  opts.connect_timeout = 1500ms;
  CHECK_THROWS_AS(dtask::Client{opts}, dtask::ConnectionError);
  auto none = cluster.connect_options();
  none.security = dtask::Security::none();
  none.connect_timeout = 1500ms;
  CHECK_THROWS_AS(dtask::Client{none}, dtask::ConnectionError);
  dtask::Client good(cluster);
  CHECK(good.submit(inc, 1).result() == 2);
}

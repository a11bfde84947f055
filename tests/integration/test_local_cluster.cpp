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

#include "client/client_core.hpp"
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

TEST_CASE("LocalCluster.Submit.SmallResultsComeStraightFromTheWorker") {
  Fixture f(2);
  auto& core = f.client.core();
  // The first results come through the scheduler; once the client is connected to the workers
  // that ran them, a waited-for small result comes straight from the worker (one hop fewer).
  std::uint64_t pushed = 0;
  for (int i = 0; i < 2000 && pushed < 20; ++i) {
    REQUIRE(f.client.submit(inc, i).result() == i + 1);
    pushed = core.results_pushed();
  }
  CHECK(pushed >= 20);
  // A pushed result is a normal future: an input to the next task, on either worker.
  auto a = f.client.submit(inc, 41);
  CHECK(a.result() == 42);
  CHECK(f.client.submit(add, a, 8).result() == 50);
  // Big submissions are not pushed (they would double the messages the client takes in).
  std::vector<int> xs(1000);
  for (int i = 0; i < 1000; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto before = core.results_pushed();
  auto ys = f.client.gather(f.client.map(inc, xs));
  REQUIRE(ys.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(ys[static_cast<std::size_t>(i)] == i + 1);
  CHECK(core.results_pushed() == before);
}

// A pushed result reaches the scheduler as the client's receipt (riding on its next message)
// or, from a client that goes quiet, as the worker's TaskDone held back for at most
// kPushedDoneDelayMs. Either way the scheduler's view is right soon after.
TEST_CASE("LocalCluster.Submit.PushedResultsReachTheScheduler") {
  Fixture f(1);
  auto& core = f.client.core();
  dtask::Client watcher(f.cluster);  // looks at the scheduler without speaking for f.client
  // Quiet client: keep the first pushed result and send nothing more.
  std::optional<dtask::Future<int>> kept;
  for (int i = 0; i < 2000 && core.results_pushed() == 0; ++i) {
    kept.emplace(f.client.submit(inc, i));
    REQUIRE(kept->result() == i + 1);
  }
  REQUIRE(core.results_pushed() == 1);
  std::this_thread::sleep_for(100ms);
  auto info = watcher.core().info(10s);
  CHECK(info["workers"][0]["processing"].get<int>() == 0);
  CHECK(info["workers"][0]["in_memory"].get<int>() >= 1);
  CHECK(info["tasks_by_state"]["processing"].get<int>() == 0);
  // A submit-result loop: each submit carries the receipt of the result before it.
  kept.reset();
  int v = 0;
  for (int i = 0; i < 300; ++i) v = f.client.submit(inc, v).result();
  CHECK(v == 300);
  info = watcher.core().info(10s);
  CHECK(info["completions_reported_by_clients"].get<std::uint64_t>() >= 200);
  // A result the scheduler heard of by receipt is an input like any other.
  auto a = f.client.submit(inc, 41);
  CHECK(a.result() == 42);
  CHECK(f.client.submit(add, a, 8).result() == 50);
  CHECK(f.client.submit(add, a, a).result() == 84);
}

// A one-task submit without inputs goes straight to the worker that pushed the last result
// (StartTask); the scheduler hears of it in a batch and places it there (issue 4, W3).
TEST_CASE("LocalCluster.Submit.EarlyStartTakesTheShortPath") {
  Fixture f(2);
  auto& core = f.client.core();
  int v = 0;
  for (int i = 0; i < 300; ++i) v = f.client.submit(inc, v).result();
  CHECK(v == 300);
  CHECK(core.early_starts() >= 250);
  CHECK(core.early_not_started() <= 10);  // until the worker has seen inc be quick 8 times
  auto info = f.client.core().info(10s);
  CHECK(info["placed_where_started_early"].get<std::uint64_t>() >= 250);
  CHECK(info["completions_reported_by_clients"].get<std::uint64_t>() >= 250);
  // An early task is an input like any other, also while it may still be running.
  auto a = f.client.submit(inc, 41);
  auto b = f.client.submit(add, a, a);
  CHECK(b.result() == 84);
  CHECK(a.result() == 42);
  // Everything released is forgotten by the scheduler: nothing left behind by the batches.
  a = {};
  b = {};
  std::size_t left = 1;
  for (int i = 0; i < 200 && left != 0; ++i) {
    std::this_thread::sleep_for(10ms);
    left = f.client.core().info(10s)["n_tasks"].get<std::size_t>();
  }
  CHECK(left == 0);
}

TEST_CASE("LocalCluster.Submit.EarlyStartOnABusyWorkerFallsBack") {
  dtask::LocalClusterOptions o;
  o.threads_per_worker = 2;
  Fixture f(1, o);
  auto& core = f.client.core();
  for (int i = 0; i < 20; ++i) REQUIRE(f.client.submit(inc, i).result() == i + 1);
  REQUIRE(core.early_starts() > 0);
  // The worker is busy with a slow task: it does not take the StartTask, and the scheduler
  // places the task on its other thread at once, not after the slow one.
  auto slow = f.client.submit(slow_inc, 0, 3000);
  std::this_thread::sleep_for(200ms);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(f.client.submit(inc, 5).result(10s) == 6);
  CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
  CHECK(core.early_not_started() >= 1);
  CHECK(slow.result(10s) == 1);
  // A failing task started early fails as itself (the scheduler's run reports it).
  for (int i = 0; i < 20; ++i) REQUIRE(f.client.submit(fail_if_negative, i).result() == i);
  auto bad = f.client.submit(fail_if_negative, -3);
  CHECK_THROWS_AS(bad.result(10s), dtask::TaskError);
  CHECK(f.client.submit(inc, 1).result(10s) == 2);
}

TEST_CASE("LocalCluster.Submit.EarlyStartToAWorkerThatDied") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  Fixture f(2, o);
  auto& core = f.client.core();
  long long target = 0;
  for (int i = 0; i < 40; ++i) target = f.client.submit(pid, i).result();
  REQUIRE(core.early_starts() > 0);
  // The worker the next task would be started on keeps its name after the huge-page re-exec.
  std::ifstream comm("/proc/" + std::to_string(target) + "/comm");
  std::string name;
  std::getline(comm, name);
  CHECK(name == "dtask-worker");
  // It dies: the StartTask cannot go, and the task completes on the other worker. (The
  // scheduler may first place it on the dead worker, as any task, until it notices the
  // silence: worker_timeout_ms, 5 s.)
  REQUIRE(::kill(static_cast<pid_t>(target), SIGKILL) == 0);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(f.client.submit(inc, 5).result(30s) == 6);
  MESSAGE("result after the early-start target died: "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()
          << " ms");
  CHECK(f.client.submit(pid, 0).result(30s) != target);
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

// One run on the loop thread that overruns (here 2 ms: what a preempted quick task looks like)
// is a strike, not a ban: after eight quick runs elsewhere the function is started early again.
// Three strikes keep it off the loop thread (every StartTask is then declined).
TEST_CASE("LocalCluster.Worker.QuickTaskThatOverranOnceRunsOnTheLoopAgain") {
  Fixture f(1);
  auto& core = f.client.core();
  for (int i = 0; i < 20; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result() == i + 1);
  REQUIRE(core.early_starts() > 0);
  auto declined = core.early_not_started();
  CHECK(f.client.submit(slow_inc, 0, 2).result(10s) == 1);  // strike one
  for (int i = 0; i < 40; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result(10s) == i + 1);
  auto after_one_strike = core.early_not_started() - declined;
  CHECK(after_one_strike >= 1);   // declined until it was quick 8 times again (8 here)...
  // ...and then started again (40 of 40 when one overrun banned it). Room for one more strike's
  // eight: a slow build (AddressSanitizer) overruns now and then on its own.
  CHECK(after_one_strike <= 30);
  for (int k = 0; k < 2; ++k) {  // strikes two and three
    CHECK(f.client.submit(slow_inc, 0, 2).result(10s) == 1);
    for (int i = 0; i < 12; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result(10s) == i + 1);
  }
  declined = core.early_not_started();
  for (int i = 0; i < 40; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result(10s) == i + 1);
  CHECK(core.early_not_started() - declined == 40);
  // A strike is forgiven after 1,024 quick runs (the 40 above count): started early again.
  for (int i = 0; i < 1000; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result(10s) == i + 1);
  declined = core.early_not_started();
  for (int i = 0; i < 40; ++i) REQUIRE(f.client.submit(slow_inc, i, 0).result(10s) == i + 1);
  CHECK(core.early_not_started() - declined == 0);
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
  for (auto& name : f.client.gather(fs)) CHECK(name == "1");
  // Resources: only the worker declaring GPU runs GPU tasks.
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
  for (auto& name : f.client.gather(fs)) CHECK(name == "1");
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
  std::size_t remaining = 1;
  for (int i = 0; i < 100 && remaining != 0; ++i) {
    auto info = f.client.scheduler_info();
    remaining = 0;
    for (auto& [state, n] : info.tasks_by_state) remaining += n;
    if (remaining) std::this_thread::sleep_for(20ms);
  }
  CHECK(remaining == 0);
}

TEST_CASE("LocalCluster.Processes.WorkersAsChildProcesses") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  Fixture f(2, o);
  auto pids = f.client.gather(f.client.map(pid, std::vector<int>(50, 0)));
  std::set<long long> distinct(pids.begin(), pids.end());
  CHECK(distinct.count(static_cast<long long>(getpid())) == 0);
  CHECK(distinct.size() >= 1);
  CHECK(f.client.compute(dtask::delayed(add, dtask::delayed(inc, 1), dtask::delayed(dec, 10))) == 11);
}

// Workers re-execute themselves with glibc's hugetlb malloc tunable (common/hugepages.hpp), so
// the buffers big transfers land in are advised for transparent huge pages; DTASK_HUGEPAGES=0
// opts out. Only meaningful where THP is in madvise mode (the default on Debian).
TEST_CASE("LocalCluster.Processes.LargeBuffersAdvisedForHugePages") {
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("built with AddressSanitizer, whose malloc ignores glibc's tunables: nothing to check");
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

// Scale-down by request and --lifetime: RetireWorkers/PleaseRetire, the worker's lifetime rule and workers_to_close, without sockets.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>

#include "scheduler/workers_to_close.hpp"
#include "test_scheduler_harness.hpp"
#include "worker/supervisor.hpp"
#include "worker/worker_state.hpp"

using namespace dtask;
using namespace dtask::protocol;
using dtask::scheduler::WorkerLoad;
using dtask::test::Harness;

namespace {

template <class M>
std::vector<std::pair<WorkerId, M>> sent(Harness& h) {
  std::vector<std::pair<WorkerId, M>> r;
  for (auto& [w, m] : h.out.to_workers) {
    if (auto* x = std::get_if<M>(&m)) r.emplace_back(w, *x);
  }
  return r;
}

const dtask_task_v1 kInc{"inc", nullptr, 1, nullptr};

struct IdleExecutor : worker::ExecutorPort {
  bool idle() const override { return true; }
  bool withdraw(TaskId) override { return false; }
  bool can_run_here() const override { return false; }
  std::optional<worker::Completion> run_here(worker::Job) override { return std::nullopt; }
};

worker::WorkerConfig worker_config(std::uint64_t lifetime_ms) {
  worker::WorkerConfig c;
  c.fast_paths = FastPaths::all();
  c.drain_timeout_ms = 30000;
  c.lifetime_ms = lifetime_ms;
  c.find_task = [](const std::string& name) -> const dtask_task_v1* { return name == "inc" ? &kInc : nullptr; };
  return c;
}

template <class T>
std::size_t count_of(const std::vector<WorkerToScheduler>& ms) {
  return static_cast<std::size_t>(std::count_if(ms.begin(), ms.end(), [](auto& m) { return std::holds_alternative<T>(m); }));
}

}  // namespace

// ---- the scheduler: RetireWorkers ----

TEST_CASE("SchedulerScaleDown.NamedLiveWorkersAreAskedToRetireOnce") {
  Harness h;
  auto a = h.worker("a");
  auto b = h.worker("b");
  h.out = {};
  h.s.handle(h.client, RetireWorkers{{"b", "nobody"}}, h.now, h.out);
  auto asked = sent<PleaseRetire>(h);
  REQUIRE(asked.size() == 1);
  CHECK(asked[0].first == b);
  h.out = {};
  h.s.handle(h.client, RetireWorkers{{"b"}}, h.now, h.out);  // asked already: not again
  CHECK(sent<PleaseRetire>(h).empty());
  // info() shows it as leaving at once, so a cluster's adapt does not count or choose it again.
  bool a_retiring = true, b_retiring = false;
  const auto info = h.s.info();
  for (const auto& w : info["workers"]) {
    if (w["name"] == "a") a_retiring = w["retiring"].get<bool>();
    if (w["name"] == "b") b_retiring = w["retiring"].get<bool>();
  }
  CHECK_FALSE(a_retiring);
  CHECK(b_retiring);
  (void)a;
}

TEST_CASE("SchedulerScaleDown.AWorkerAlreadyRetiringIsNotAskedAgain") {
  Harness h;
  h.worker("a");
  auto b = h.worker("b");
  h.s.handle(b, RetireWorker{}, h.now, h.out);  // SIGTERM got there first
  h.out = {};
  h.s.handle(h.client, RetireWorkers{{"b"}}, h.now, h.out);
  CHECK(sent<PleaseRetire>(h).empty());
}

TEST_CASE("SchedulerScaleDown.CopiesDoNotGoToAnotherWorkerAskedToRetire") {
  Harness h;
  auto a = h.worker("a");
  h.submit(Harness::roots("r", 4, "inc"));
  for (auto& [w, c] : h.computes()) {
    REQUIRE(w == a);
    h.done(a, c);
  }
  auto b = h.worker("b");
  auto c = h.worker("c");
  h.s.handle(h.client, RetireWorkers{{"a", "b"}}, h.now, h.out);
  h.out = {};
  h.s.handle(a, RetireWorker{}, h.now, h.out);  // a's answer comes first; b's is on its way
  auto asks = sent<FetchReplicas>(h);
  REQUIRE_FALSE(asks.empty());
  for (auto& [to, m] : asks) CHECK(to == c);
  (void)b;
}

TEST_CASE("SchedulerScaleDown.IdleTimeIsCountedFromTheLastTickWithWork") {
  Harness h;
  auto a = h.worker("a");
  h.submit(Harness::roots("r", 1, "inc"));
  auto cs = h.computes();
  REQUIRE(cs.size() == 1);
  h.now += 1000;
  h.s.tick(h.now, h.out);  // busy at this tick
  h.done(a, cs[0].second);
  h.now += 2500;
  h.s.tick(h.now, h.out);
  auto w = h.s.info()["workers"][0];
  CHECK(w["idle_ms"].get<std::uint64_t>() == 2500);
  CHECK(w["nbytes"].get<std::uint64_t>() > 0);
}

// ---- the worker: PleaseRetire and --lifetime ----

TEST_CASE("WorkerScaleDown.PleaseRetireStartsTheDrain") {
  IdleExecutor exec;
  worker::WorkerState s(worker_config(0), exec);
  worker::WorkerOutbox out;
  s.started(1000);
  s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, 1000, out);
  out.to_scheduler.clear();
  s.handle(PleaseRetire{"asked by client 0"}, 1010, out);
  CHECK(s.retiring());
  CHECK(count_of<RetireWorker>(out.to_scheduler) == 1);
  s.handle(PleaseRetire{"again"}, 1020, out);  // idempotent
  CHECK(count_of<RetireWorker>(out.to_scheduler) == 1);
  s.handle(WorkerMayLeave{0}, 1030, out);
  REQUIRE(s.stop().has_value());
  CHECK(s.stop()->code == 0);
}

TEST_CASE("WorkerScaleDown.LifetimeRetiresGracefullyWhenItIsReached") {
  IdleExecutor exec;
  worker::WorkerState s(worker_config(2000), exec);
  worker::WorkerOutbox out;
  s.started(1000);
  s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, 1000, out);
  out.to_scheduler.clear();
  s.tick(2999, out);
  CHECK_FALSE(s.retiring());
  CHECK(count_of<RetireWorker>(out.to_scheduler) == 0);
  s.tick(3000, out);
  CHECK(s.retiring());
  CHECK(count_of<RetireWorker>(out.to_scheduler) == 1);
  CHECK_FALSE(s.stop().has_value());  // it waits for the hand-over
  s.tick(3500, out);
  CHECK(count_of<RetireWorker>(out.to_scheduler) == 1);  // once
  s.handle(WorkerMayLeave{2}, 3600, out);
  REQUIRE(s.stop().has_value());
  CHECK(s.stop()->code == 0);
}

TEST_CASE("WorkerScaleDown.NoLifetimeNeverRetires") {
  IdleExecutor exec;
  worker::WorkerState s(worker_config(0), exec);
  worker::WorkerOutbox out;
  s.started(1000);
  s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, 1000, out);
  for (std::uint64_t t = 1000; t < 100000; t += 400) {
    s.handle(Heartbeat{t}, t, out);
    s.tick(t, out);
  }
  CHECK_FALSE(s.retiring());
}

// ---- workers_to_close ----

TEST_CASE("WorkersToClose.IdleFirstThenFewestBytes") {
  std::vector<WorkerLoad> ws = {
      {"busy-small", "", 3, 10, false},
      {"idle-big", "", 0, 5000, false},
      {"idle-small", "", 0, 100, false},
      {"busy-big", "", 1, 9000, false},
  };
  CHECK(scheduler::workers_to_close(ws, 2) == std::vector<std::string>{"idle-small", "idle-big"});
  CHECK(scheduler::workers_to_close(ws, 3) == std::vector<std::string>{"idle-small", "idle-big", "busy-small"});
  CHECK(scheduler::workers_to_close(ws, 10).size() == 4);
}

TEST_CASE("WorkersToClose.LeavingWorkersAreNotChosen") {
  std::vector<WorkerLoad> ws = {{"a", "", 0, 0, true}, {"b", "", 0, 50, false}};
  CHECK(scheduler::workers_to_close(ws, 1) == std::vector<std::string>{"b"});
}

TEST_CASE("WorkersToClose.TiesAreBrokenByName") {
  std::vector<WorkerLoad> ws = {{"c", "", 0, 0, false}, {"a", "", 0, 0, false}, {"b", "", 0, 0, false}};
  CHECK(scheduler::workers_to_close(ws, 2) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("WorkersToClose.GroupsCloseWholeAndAnIdleGroupIsOneWithNothingProcessing") {
  std::vector<WorkerLoad> ws = {
      {"j1-0", "j1", 0, 10, false}, {"j1-1", "j1", 2, 10, false},  // j1: one worker busy
      {"j2-0", "j2", 0, 900, false}, {"j2-1", "j2", 0, 900, false},  // j2: idle, big
      {"j3-0", "j3", 0, 0, true}, {"j3-1", "j3", 0, 0, true},       // j3: leaving already
  };
  auto gs = scheduler::groups_to_close(ws, 1);
  REQUIRE(gs.size() == 1);
  CHECK(gs[0].group == "j2");
  CHECK(gs[0].workers == std::vector<std::string>{"j2-0", "j2-1"});
  CHECK(scheduler::groups_to_close(ws, 5).size() == 2);  // j3 is gone already
}

// ---- dtask-worker --nworkers: the group's exit code, and the group itself ----

TEST_CASE("WorkerLifetime.StaggerMovesItWithinPlusOrMinusS") {
  CHECK(worker::staggered_lifetime_ms(10'000, 2'000, 0.0) == 8'000);
  CHECK(worker::staggered_lifetime_ms(10'000, 2'000, 1.0) == 12'000);
  CHECK(worker::staggered_lifetime_ms(10'000, 2'000, 0.5) == 10'000);
  CHECK(worker::staggered_lifetime_ms(10'000, 0, 0.9) == 10'000);
  CHECK(worker::staggered_lifetime_ms(1'000, 5'000, 0.0) == 1);  // never 0 (that means none) or negative
  CHECK(worker::staggered_lifetime_ms(0, 5'000, 1.0) == 0);      // no lifetime stays none
}

TEST_CASE("WorkerGroup.ExitCodeIsTheFirstNonZeroElseZero") {
  CHECK(worker::group_exit_code({}) == 0);
  CHECK(worker::group_exit_code({0, 0, 0}) == 0);
  CHECK(worker::group_exit_code({0, 3, 143}) == 3);
  CHECK(worker::group_exit_code({143, 0, 3}) == 143);
}

TEST_CASE("WorkerGroup.RunsEveryMemberInItsOwnProcessAndWaitsForAll") {
  const pid_t me = ::getpid();
  // Each member exits with a code of its own; the group waits for all and reports a non-zero one.
  int code = worker::run_group(3, [&](std::size_t i) { return ::getpid() != me && i == 2 ? 7 : 0; }, "unit");
  CHECK(code == 7);
  CHECK(worker::run_group(4, [&](std::size_t) { return ::getpid() != me ? 0 : 9; }, "unit") == 0);
}

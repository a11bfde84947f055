// A worker leaving on its own and a lost scheduler: the rules of WorkerState and SchedulerState, without sockets.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "test_scheduler_harness.hpp"
#include "worker/worker_state.hpp"

using namespace dtask;
using namespace dtask::protocol;

namespace {

// ---- the worker's side ----

const dtask_task_v1 kInc{"inc", nullptr, 1, nullptr};

struct FakeExecutor : worker::ExecutorPort {
  std::set<std::uint64_t> queued;  // jobs that have not started (withdrawable)
  bool idle() const override { return false; }
  bool withdraw(TaskId id) override { return queued.erase(id.value) > 0; }
  bool can_run_here() const override { return false; }
  std::optional<worker::Completion> run_here(worker::Job) override { return std::nullopt; }
};

struct WorkerHarness {
  FakeExecutor exec;
  worker::WorkerState s;
  worker::WorkerOutbox out;
  std::uint64_t now = 1000;

  WorkerHarness() : s(config(), exec) {
    s.started(now);
    s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, now, out);
  }
  static worker::WorkerConfig config() {
    worker::WorkerConfig c;
    c.fast_paths = FastPaths::all();
    c.drain_timeout_ms = 30000;
    c.find_task = [](const std::string& name) -> const dtask_task_v1* { return name == "inc" ? &kInc : nullptr; };
    return c;
  }
  static ComputeTask compute(std::uint64_t id) {
    ComputeTask m;
    m.task = TaskId{id};
    m.key = "k" + std::to_string(id);
    m.func = "inc";
    TaskArg a;
    a.kind = TaskArg::value;
    a.data = Codec<int>::encode(1);
    m.args.push_back(a);
    return m;
  }
  // A task whose one input (`dep`) lives on worker 2 only.
  static ComputeTask needs(std::uint64_t id, std::uint64_t dep) {
    ComputeTask m = compute(id);
    m.args.clear();
    TaskArg a;
    a.kind = TaskArg::dep;
    a.refs = {TaskId{dep}};
    m.args.push_back(a);
    m.deps.push_back(DepLocation{TaskId{dep}, {WorkerId{2}}, {"tcp://peer-2"}});
    return m;
  }
  // One pass: the message, start_ready, tick.
  void give(SchedulerToWorker m) {
    s.handle(std::move(m), now, out);
    REQUIRE(s.start_ready(out));
    s.tick(now, out);
  }
  std::vector<WorkerToScheduler> settle() {
    s.settle(now, out);
    auto m = std::move(out.to_scheduler);
    out.to_scheduler.clear();
    return m;
  }
  template <class T>
  static std::vector<T> only(const std::vector<WorkerToScheduler>& ms) {
    std::vector<T> r;
    for (auto& m : ms) {
      if (auto* x = std::get_if<T>(&m)) r.push_back(*x);
    }
    return r;
  }
  void complete(std::uint64_t id) {
    s.on_completion(worker::Completion{TaskId{id}, true, Codec<int>::encode(7), "", &kInc, 1000}, out);
  }
};

std::vector<TaskId> ids(std::initializer_list<std::uint64_t> v) {
  std::vector<TaskId> r;
  for (auto x : v) r.push_back(TaskId{x});
  return r;
}

}  // namespace

TEST_CASE("WorkerRetire.UnstartedTasksGoBackRunningOnesFinishHere") {
  WorkerHarness h;
  h.give(WorkerHarness::compute(10));  // will run
  h.give(WorkerHarness::compute(11));  // still queued at the executor
  h.give(WorkerHarness::needs(12, 99));  // waiting for its input
  h.exec.queued = {11};
  h.out = {};
  h.s.retire(h.now, h.out);
  auto sent = WorkerHarness::only<RetireWorker>(h.settle());
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].returned == ids({11, 12}));
  CHECK(h.s.retiring());
  CHECK(h.s.is_pending(TaskId{10}));
  CHECK_FALSE(h.s.is_pending(TaskId{11}));
  CHECK_FALSE(h.s.is_pending(TaskId{12}));
  // The running one is reported as usual and its result kept (to be handed over).
  h.complete(10);
  auto done = WorkerHarness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{10});
  CHECK(h.s.has_result(TaskId{10}));
  CHECK_FALSE(h.s.stop().has_value());
  h.s.retire(h.now, h.out);  // idempotent
  CHECK(WorkerHarness::only<RetireWorker>(h.settle()).empty());
}

TEST_CASE("WorkerRetire.WorkArrivingLaterGoesBackToo") {
  WorkerHarness h;
  h.s.retire(h.now, h.out);
  h.settle();
  h.give(WorkerHarness::compute(20));
  h.give(WorkerHarness::compute(21));
  CHECK(h.out.to_executor.empty());
  auto sent = WorkerHarness::only<RetireWorker>(h.settle());
  REQUIRE(sent.size() == 1);  // one message for the pass
  CHECK(sent[0].returned == ids({20, 21}));
  // A client's early start is declined.
  h.s.handle_request(StartTask{7, "e", "inc", {Codec<int>::encode(1)}, "client"}, "client", h.out);
  REQUIRE(h.s.start_ready(h.out));
  REQUIRE(h.out.replies.size() == 1);
  CHECK(std::holds_alternative<NotStarted>(h.out.replies[0].msg));
}

TEST_CASE("WorkerRetire.PushedResultsTaskDoneIsNotHeldBack") {
  WorkerHarness h;
  for (std::uint64_t id : {30, 31}) {
    auto m = WorkerHarness::compute(id);
    m.push_to = {"client-data-id"};
    h.give(m);
  }
  h.complete(30);
  CHECK(WorkerHarness::only<TaskDone>(h.settle()).empty());  // held for the client's receipt
  h.s.retire(h.now, h.out);
  auto batch = h.settle();
  CHECK(WorkerHarness::only<TaskDone>(batch).size() == 1);  // the scheduler must know what is here
  CHECK(WorkerHarness::only<RetireWorker>(batch).size() == 1);
  h.complete(31);  // finishes while retiring: reported at once, not held
  auto done = WorkerHarness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{31});
}

TEST_CASE("WorkerRetire.LeavesWithCodeZeroWhenTheSchedulerSaysSo") {
  WorkerHarness h;
  h.give(WorkerMayLeave{3});  // not retiring: a stale one changes nothing
  CHECK_FALSE(h.s.stop().has_value());
  h.s.retire(h.now, h.out);
  h.give(WorkerMayLeave{3});
  REQUIRE(h.s.stop().has_value());
  CHECK(h.s.stop()->code == 0);
  CHECK(h.s.stop()->reason.empty());
}

TEST_CASE("WorkerRetire.LeavesAnywayAfterTheDrainTimeout") {
  WorkerHarness h;
  h.s.retire(h.now, h.out);
  h.now += 30000;
  h.s.handle(Heartbeat{h.now}, h.now, h.out);  // the scheduler is alive, the hand-over just takes long
  h.s.tick(h.now, h.out);
  CHECK_FALSE(h.s.stop().has_value());
  h.now += 1;
  h.s.handle(Heartbeat{h.now}, h.now, h.out);
  h.s.tick(h.now, h.out);
  REQUIRE(h.s.stop().has_value());
  CHECK(h.s.stop()->code == 0);
}

TEST_CASE("WorkerRetire.RecipientFetchesFromTheRetiringWorkerAndSaysSo") {
  WorkerHarness h;
  h.give(FetchReplicas{WorkerId{2}, "tcp://retiring-2", ids({40, 41})});
  REQUIRE(h.out.to_peers.size() == 1);
  const auto& req = h.out.to_peers[0];
  CHECK(req.peer == WorkerId{2});
  CHECK(req.address == "tcp://retiring-2");
  auto get = std::get<GetData>(req.msg);
  auto asked = get.tasks;
  std::sort(asked.begin(), asked.end(), [](TaskId a, TaskId b) { return a.value < b.value; });
  CHECK(asked == ids({40, 41}));
  DataReply reply{get.request_id, {}};
  for (TaskId t : get.tasks) reply.items.push_back(DataItem{t, true, Codec<int>::encode(static_cast<int>(t.value))});
  h.s.handle_reply(reply, 0, h.out);
  auto added = WorkerHarness::only<ReplicasAdded>(h.settle());
  REQUIRE(added.size() == 1);
  CHECK(added[0].tasks.size() == 2);
  CHECK(h.s.has_result(TaskId{40}));
  CHECK(h.s.has_result(TaskId{41}));
}

TEST_CASE("WorkerRetire.AskedBeforeTheWelcomeItRetiresWhenWelcomed") {
  FakeExecutor exec;
  worker::WorkerState s(WorkerHarness::config(), exec);
  worker::WorkerOutbox out;
  s.started(1000);
  s.retire(1000, out);
  CHECK(out.to_scheduler.empty());  // nobody to tell yet
  CHECK_FALSE(s.stop().has_value());
  s.handle(WorkerWelcome{kProtocolVersion, WorkerId{4}, {}, 500}, 1010, out);
  REQUIRE(out.to_scheduler.size() == 1);
  CHECK(std::holds_alternative<RetireWorker>(out.to_scheduler[0]));
  s.handle(WorkerMayLeave{0}, 1020, out);
  REQUIRE(s.stop().has_value());
  CHECK(s.stop()->code == 0);
}

TEST_CASE("WorkerRetire.AskedBeforeAWelcomeThatNeverComesItLeavesAfterTheGrace") {
  FakeExecutor exec;
  auto config = WorkerHarness::config();
  config.reconnect_grace_ms = 1000;
  worker::WorkerState s(config, exec);
  worker::WorkerOutbox out;
  s.started(1000);
  s.retire(1000, out);
  s.tick(2000, out);
  CHECK_FALSE(s.stop().has_value());  // the welcome may still come
  s.tick(2001, out);
  REQUIRE(s.stop().has_value());  // not the connect timeout's error, and not after 30 s
  CHECK(s.stop()->code == 0);
}

TEST_CASE("WorkerLink.AClosedConnectionNotMadeAgainMeansTheSchedulerIsGone") {
  WorkerHarness h;
  h.s.scheduler_link(false, h.now);
  h.now += WorkerHarness::config().reconnect_grace_ms;
  h.s.tick(h.now, h.out);
  CHECK_FALSE(h.s.stop().has_value());  // ZeroMQ may still reconnect
  h.s.scheduler_link(true, h.now);      // it did
  h.now += 5 * WorkerHarness::config().reconnect_grace_ms;
  h.s.tick(h.now, h.out);
  CHECK_FALSE(h.s.stop().has_value());
  h.s.scheduler_link(false, h.now);
  h.now += WorkerHarness::config().reconnect_grace_ms + 1;
  h.s.tick(h.now, h.out);  // far sooner than the heartbeat silence (15 s)
  REQUIRE(h.s.stop().has_value());
  CHECK(h.s.stop()->code == 1);
  CHECK(h.s.stop()->reason.find("lost the scheduler") != std::string::npos);
  CHECK(h.s.stop()->scheduler_gone);
}

// ---- the scheduler's side ----

namespace {
using dtask::test::Harness;

template <class M>
std::vector<std::pair<WorkerId, M>> sent(Harness& h) {
  std::vector<std::pair<WorkerId, M>> r;
  for (auto& [w, m] : h.out.to_workers) {
    if (auto* x = std::get_if<M>(&m)) r.emplace_back(w, *x);
  }
  return r;
}
std::uint64_t counter(Harness& h, const char* name) { return h.s.info()["counters"][name].get<std::uint64_t>(); }

// Worker a holds the results of r0..r(n-1) (only copy); b is present.
struct TwoWorkers {
  Harness h;
  WorkerId a, b;
  std::vector<ComputeTask> on_a;
  explicit TwoWorkers(int n) {
    a = h.worker("a");
    h.submit(Harness::roots("r", n, "inc"));
    for (auto& [w, c] : h.computes()) {
      REQUIRE(w == a);
      on_a.push_back(c);
    }
    for (auto& c : on_a) h.done(a, c);
    b = h.worker("b");
    h.out = {};
  }
};
}  // namespace

TEST_CASE("SchedulerRetire.ARetiringWorkerGetsNoNewWork") {
  TwoWorkers t(0);
  t.h.s.handle(t.a, RetireWorker{}, t.h.now, t.h.out);
  t.h.submit(Harness::roots("x", 6, "inc"));
  auto cs = t.h.computes();
  REQUIRE(cs.size() == 6);
  for (auto& [w, c] : cs) CHECK(w == t.b);
}

TEST_CASE("SchedulerRetire.ATaskWhoseInputIsOnTheRetiringWorkerRunsElsewhere") {
  TwoWorkers t(1);
  t.h.s.handle(t.a, RetireWorker{}, t.h.now, t.h.out);
  t.h.submit({Harness::spec("d", "inc", {"r0"})});
  auto [w, c] = t.h.compute_of("d");
  CHECK(w == t.b);  // locality would have chosen a
  REQUIRE(c.deps.size() == 1);
  CHECK(c.deps[0].holders == std::vector<WorkerId>{t.a});  // fetched from the retiring worker
}

TEST_CASE("SchedulerRetire.ReturnedTasksArePlacedElsewhere") {
  Harness h;
  auto a = h.worker("a", 1);
  h.submit(Harness::roots("q", 3, "inc"));
  auto cs = h.computes();
  REQUIRE(cs.size() == 3);
  auto b = h.worker("b", 1);
  h.out = {};
  h.s.handle(a, RetireWorker{{cs[1].second.task, cs[2].second.task}}, h.now, h.out);
  auto moved = h.computes();
  REQUIRE(moved.size() == 2);
  for (auto& [w, c] : moved) CHECK(w == b);
  CHECK(h.s.worker(a)->processing.size() == 1);  // q0 runs on
  CHECK(sent<WorkerMayLeave>(h).empty());
}

TEST_CASE("SchedulerRetire.UniqueResultsAreCopiedThenTheWorkerMayLeaveAndNothingIsRecomputed") {
  TwoWorkers t(3);
  auto& h = t.h;
  h.s.handle(t.a, RetireWorker{}, h.now, h.out);
  auto asks = sent<FetchReplicas>(h);
  REQUIRE(asks.size() == 1);
  CHECK(asks[0].first == t.b);
  CHECK(asks[0].second.from == t.a);
  CHECK(asks[0].second.address == h.s.worker(t.a)->info.address);
  CHECK(asks[0].second.tasks.size() == 3);
  CHECK(sent<WorkerMayLeave>(h).empty());  // not before the copies are made
  h.out = {};
  h.s.handle(t.b, ReplicasAdded{{t.on_a[0].task, t.on_a[1].task}}, h.now, h.out);
  CHECK(sent<WorkerMayLeave>(h).empty());  // one still only on a
  CHECK(sent<FetchReplicas>(h).empty());   // and already asked for
  h.s.handle(t.b, ReplicasAdded{{t.on_a[2].task}}, h.now, h.out);
  auto leave = sent<WorkerMayLeave>(h);
  REQUIRE(leave.size() == 1);
  CHECK(leave[0].first == t.a);
  CHECK(leave[0].second.handed_over == 3);
  CHECK(counter(h, "results_handed_over") == 3);
  CHECK(counter(h, "workers_retired") == 1);
  h.out = {};
  h.s.handle(t.a, WorkerGoodbye{0}, h.now, h.out);
  CHECK(h.computes().empty());  // nothing recomputed
  CHECK(h.to_client<KeyLost>().empty());
  for (int i = 0; i < 3; ++i) CHECK(h.state_of("r" + std::to_string(i)) == scheduler::TaskState::memory);
  CHECK(h.s.find("r0")->who_has.to_vector() == std::vector<WorkerId>{t.b});
}

TEST_CASE("SchedulerRetire.RunningTasksFinishThereFirstAndTheirResultsAreCopiedToo") {
  Harness h;
  auto a = h.worker("a", 1);
  h.submit({Harness::spec("run", "inc")});
  auto [w, c] = h.compute_of("run");
  REQUIRE(w == a);
  auto b = h.worker("b", 1);
  h.out = {};
  h.s.handle(a, RetireWorker{}, h.now, h.out);
  CHECK(sent<WorkerMayLeave>(h).empty());  // it runs a task
  CHECK(sent<FetchReplicas>(h).empty());
  h.done(a, c);
  auto asks = sent<FetchReplicas>(h);
  REQUIRE(asks.size() == 1);
  CHECK(asks[0].first == b);
  CHECK(asks[0].second.tasks == std::vector<TaskId>{c.task});
  h.out = {};
  h.s.handle(b, ReplicasAdded{{c.task}}, h.now, h.out);
  CHECK(sent<WorkerMayLeave>(h).size() == 1);
}

TEST_CASE("SchedulerRetire.ResultsHeldElsewhereTooAreNotCopied") {
  TwoWorkers t(2);
  t.h.s.handle(t.b, ReplicasAdded{{t.on_a[0].task, t.on_a[1].task}}, t.h.now, t.h.out);
  t.h.out = {};
  t.h.s.handle(t.a, RetireWorker{}, t.h.now, t.h.out);
  CHECK(sent<FetchReplicas>(t.h).empty());
  CHECK(sent<WorkerMayLeave>(t.h).size() == 1);
}

// Two workers hold the same result. a retires while b stays: a may leave (b keeps it). Then b
// retires before a has gone: a's copy does not count for b (a is leaving too), so b waits for a
// worker that stays, hands the result over, and only then may leave.
TEST_CASE("SchedulerRetire.ACopyOnAnotherRetiringWorkerDoesNotCount") {
  TwoWorkers t(1);
  auto& h = t.h;
  h.s.handle(t.b, ReplicasAdded{{t.on_a[0].task}}, h.now, h.out);  // a and b hold r0
  h.out = {};
  h.s.handle(t.a, RetireWorker{{}, true}, h.now, h.out);
  auto may = sent<WorkerMayLeave>(h);
  REQUIRE(may.size() == 1);
  CHECK(may[0].first == t.a);
  h.out = {};
  h.s.handle(t.b, RetireWorker{{}, true}, h.now, h.out);  // a has not said goodbye yet
  h.s.tick(h.now + 100, h.out);
  CHECK(sent<WorkerMayLeave>(h).empty());  // nobody that stays has r0
  auto c = h.worker("c");                  // a new worker joins
  h.out = {};
  h.s.tick(h.now + 200, h.out);
  auto asks = sent<FetchReplicas>(h);
  REQUIRE(asks.size() == 1);
  CHECK(asks[0].first == c);
  CHECK(asks[0].second.from == t.b);
  CHECK(sent<WorkerMayLeave>(h).empty());
  h.s.handle(c, ReplicasAdded{{t.on_a[0].task}}, h.now + 300, h.out);
  h.s.tick(h.now + 400, h.out);
  may = sent<WorkerMayLeave>(h);
  REQUIRE(may.size() == 1);
  CHECK(may[0].first == t.b);
}

TEST_CASE("SchedulerRetire.WithNoOtherWorkerItMayLeaveAtOnce") {
  Harness h;
  auto a = h.worker("a");
  h.submit(Harness::roots("r", 2, "inc"));
  for (auto& [w, c] : h.computes()) h.done(w, c);
  h.out = {};
  h.s.handle(a, RetireWorker{}, h.now, h.out);
  CHECK(sent<FetchReplicas>(h).empty());
  CHECK(sent<WorkerMayLeave>(h).size() == 1);
}

TEST_CASE("SchedulerRetire.AtItsLifetimeItWaitsForANewWorkerToTakeItsResults") {
  Harness h;
  auto a = h.worker("a");
  h.submit(Harness::roots("r", 2, "inc"));
  for (auto& [w, c] : h.computes()) h.done(w, c);
  h.out = {};
  h.s.handle(a, RetireWorker{{}, true}, h.now, h.out);
  CHECK(sent<WorkerMayLeave>(h).empty());  // its replacement is on the way
  h.s.tick(h.now + 1000, h.out);
  CHECK(sent<WorkerMayLeave>(h).empty());
  auto b = h.worker("b");  // the replacement joins
  h.out = {};
  h.s.tick(h.now + 2000, h.out);
  auto asks = sent<FetchReplicas>(h);
  REQUIRE(asks.size() == 1);
  CHECK(asks[0].first == b);
  CHECK(asks[0].second.tasks.size() == 2);
}

TEST_CASE("SchedulerRetire.WithNoOtherWorkerItStillFinishesWhatRunsFirst") {
  Harness h;
  auto a = h.worker("a");
  h.submit({Harness::spec("run", "inc")});
  auto [w, c] = h.compute_of("run");
  h.s.handle(a, RetireWorker{}, h.now, h.out);
  CHECK(sent<WorkerMayLeave>(h).empty());
  h.done(a, c);
  CHECK(sent<WorkerMayLeave>(h).size() == 1);
  CHECK(h.state_of("run") == scheduler::TaskState::memory);
}

TEST_CASE("SchedulerRetire.ACopyWhoseRecipientLeftIsAskedOfAnotherWorker") {
  TwoWorkers t(1);
  auto& h = t.h;
  auto c = h.worker("c");
  h.out = {};
  h.s.handle(t.a, RetireWorker{}, h.now, h.out);
  auto asks = sent<FetchReplicas>(h);
  REQUIRE(asks.size() == 1);
  WorkerId first = asks[0].first;
  WorkerId other = first == t.b ? c : t.b;
  h.out = {};
  h.s.handle(first, WorkerGoodbye{0}, h.now, h.out);
  h.now += 500;
  h.s.tick(h.now, h.out);
  auto again = sent<FetchReplicas>(h);
  REQUIRE(again.size() == 1);
  CHECK(again[0].first == other);
  CHECK(sent<WorkerMayLeave>(h).empty());
}

TEST_CASE("SchedulerRetire.TheGoodbyeAfterADrainDoesNotStopTheJob") {
  auto cfg = Harness::config();
  cfg.stop_job_when_worker_signalled = true;  // as under the MPI runner
  Harness h(cfg);
  auto a = h.worker("a");
  h.worker("b");
  h.s.handle(a, RetireWorker{}, h.now, h.out);
  REQUIRE(sent<WorkerMayLeave>(h).size() == 1);
  h.s.handle(a, WorkerGoodbye{0}, h.now, h.out);
  CHECK_FALSE(h.s.shutdown_requested());
  CHECK(h.s.alive_workers().size() == 1);
}

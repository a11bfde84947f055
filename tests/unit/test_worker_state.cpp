// The worker's rules (hold, release, adopt, strike, pardon, fetch retry, the switch), driven without sockets through WorkerState.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "worker/loop_takeover.hpp"
#include "worker/worker_state.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::worker;

namespace {

// Task functions are only looked up and compared by the core; the executor (here a fake) runs them.
const dtask_task_v1 kInc{"inc", nullptr, 1, nullptr};
const dtask_task_v1 kOther{"other", nullptr, 1, nullptr};

constexpr std::uint64_t kQuickNs = 1'000;
constexpr std::uint64_t kOverrunNs = kRunHereMaxNs + 1;

// Answers the core's synchronous questions; runs "on the loop thread" by returning a completion
// whose duration the test chooses.
struct FakeExecutor : ExecutorPort {
  bool is_idle = true;
  bool taken = false;      // the standby thread took the loop over
  bool lose_loop = false;  // the next run_here loses the loop
  std::set<std::uint64_t> queued;  // withdrawable jobs
  std::vector<Job> ran_here;
  std::uint64_t run_ns = kQuickNs;
  bool ok = true;
  Payload result = Codec<int>::encode(42);

  bool idle() const override { return is_idle; }
  bool withdraw(TaskId id) override { return queued.erase(id.value) > 0; }
  bool can_run_here() const override { return !taken; }
  std::optional<Completion> run_here(Job job) override {
    ran_here.push_back(job);
    if (lose_loop) {
      taken = true;
      return std::nullopt;
    }
    return Completion{job.id, ok, result, ok ? "" : "boom", job.entry, run_ns};
  }
};

struct Harness {
  FakeExecutor exec;
  WorkerState s;
  WorkerOutbox out;
  std::uint64_t now = 1000;

  explicit Harness(FastPaths fp = FastPaths::all()) : s(config(fp), exec) {
    s.started(now);
    s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, now, out);
  }
  static WorkerConfig config(FastPaths fp) {
    WorkerConfig c;
    c.fast_paths = fp;
    c.fetch_timeout_ms = 100;
    c.find_task = [](const std::string& name) -> const dtask_task_v1* {
      if (name == "inc") return &kInc;
      if (name == "other") return &kOther;
      return nullptr;
    };
    c.tasks_provided = "plugin 'test' provides: inc, other";
    return c;
  }
  static ComputeTask compute(std::uint64_t id, const std::string& key, const std::string& func = "inc") {
    ComputeTask m;
    m.task = TaskId{id};
    m.key = key;
    m.func = func;
    TaskArg a;
    a.kind = TaskArg::value;
    a.data = Codec<int>::encode(1);
    m.args.push_back(a);
    return m;
  }
  // Task `id` whose one argument is the result of task `dep`, held by `holders` (peer ids 2, 3, ...
  // at tcp://pN).
  static ComputeTask compute_on(std::uint64_t id, const std::string& key, std::uint64_t dep,
                                std::vector<std::uint32_t> holders) {
    auto m = compute(id, key);
    m.args[0].kind = TaskArg::dep;
    m.args[0].refs = {TaskId{dep}};
    DepLocation where{TaskId{dep}, {}, {}};
    for (auto p : holders) {
      where.holders.push_back(WorkerId{p});
      where.addresses.push_back("tcp://p" + std::to_string(p));
    }
    m.deps.push_back(where);
    return m;
  }
  static StartTask start(std::uint64_t nonce, const std::string& key, const std::string& func = "inc") {
    return StartTask{nonce, key, func, {Codec<int>::encode(1)}, "client-data-id"};
  }
  // One pass of the loop without sockets: the message, start_ready, tick.
  void give(ComputeTask m) {
    s.handle(std::move(m), now, out);
    REQUIRE(s.start_ready(out));
    s.tick(now, out);
  }
  void ask(StartTask m, const std::string& from = "client-conn") {
    s.handle_request(std::move(m), from, out);
    REQUIRE(s.start_ready(out));
  }
  // An executor thread finished `id`.
  void complete(std::uint64_t id, std::uint64_t run_ns = kQuickNs, const dtask_task_v1* fn = &kInc) {
    s.on_completion(Completion{TaskId{id}, true, Codec<int>::encode(7), "", fn, run_ns}, out);
  }
  // `n` quick runs of `fn` finished on executor threads (for tasks nobody waits for any more).
  void quick_runs(int n, const dtask_task_v1* fn = &kInc) {
    for (int i = 0; i < n; ++i) complete(0xdead, kQuickNs, fn);
  }
  // The end of the pass at `now`: what goes to the scheduler.
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
  template <class T>
  std::vector<std::pair<std::string, T>> replies() {
    std::vector<std::pair<std::string, T>> r;
    for (auto& x : out.replies) {
      if (auto* m = std::get_if<T>(&x.msg)) r.emplace_back(x.to, *m);
    }
    return r;
  }
  std::vector<TaskId> handed_to_executor() {
    std::vector<TaskId> r;
    for (auto& j : out.to_executor) r.push_back(j.id);
    out.to_executor.clear();
    return r;
  }
  // A task that ran on an executor thread and whose result was pushed to one client.
  void pushed_result(std::uint64_t id, bool dependents_waiting = false) {
    auto m = compute(id, "k" + std::to_string(id));
    m.push_to = {"client-data-id"};
    m.dependents_waiting = dependents_waiting;
    give(std::move(m));
    REQUIRE(handed_to_executor() == std::vector<TaskId>{TaskId{id}});
    complete(id);
  }
};

}  // namespace

// ---- hold ----

TEST_CASE("WorkerState.Hold.PushedResultsTaskDoneWaitsForTheDeadline") {
  Harness h;
  h.pushed_result(5);
  auto pushes = h.replies<ResultPushed>();
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].first == "client-data-id");
  CHECK(pushes[0].second.task == TaskId{5});
  CHECK(Harness::only<TaskDone>(h.settle()).empty());  // held
  h.now += kPushedDoneDelayMs - 1;
  CHECK(Harness::only<TaskDone>(h.settle()).empty());  // still held
  h.now += 1;
  auto done = Harness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{5});
  CHECK(done[0].has_data);
  CHECK(h.s.poll_timeout_ms() > kPushedDoneDelayMs);  // nothing held: the loop may sleep longer
}

TEST_CASE("WorkerState.Hold.AnyOtherMessageTakesTheHeldTaskDoneAlong") {
  Harness h;
  h.pushed_result(5);
  CHECK(Harness::only<TaskDone>(h.settle()).empty());
  h.s.handle(StealRequest{TaskId{99}}, h.now, h.out);  // answered with a StealReply
  auto batch = h.settle();
  REQUIRE(batch.size() == 2);
  REQUIRE(std::holds_alternative<TaskDone>(batch[0]));  // ahead of the message it rides with
  CHECK(std::get<TaskDone>(batch[0]).task == TaskId{5});
  CHECK(std::holds_alternative<StealReply>(batch[1]));
}

TEST_CASE("WorkerState.Hold.NotHeldWhenDependentsWait") {
  Harness h;
  h.pushed_result(5, /*dependents_waiting=*/true);
  CHECK(h.replies<ResultPushed>().size() == 1);
  auto done = Harness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{5});
}

TEST_CASE("WorkerState.Hold.AReleaseCancelsTheHeldTaskDone") {
  Harness h;
  h.pushed_result(5);
  CHECK(Harness::only<TaskDone>(h.settle()).empty());
  h.s.handle(ReleaseTasks{{TaskId{5}}}, h.now, h.out);  // the scheduler took the client's receipt
  h.now += 10 * kPushedDoneDelayMs;
  CHECK(Harness::only<TaskDone>(h.settle()).empty());
  CHECK(h.s.take_held().empty());
  CHECK_FALSE(h.s.has_result(TaskId{5}));
}

TEST_CASE("WorkerState.Hold.ARefusedPushSendsTaskDoneAtOnce") {
  Harness h;
  h.pushed_result(5);
  REQUIRE(h.out.replies.size() == 1);
  h.s.push_refused(h.out.replies[0].push, h.out);  // the client is not connected here
  auto done = Harness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{5});
}

// ---- release ----

TEST_CASE("WorkerState.Release.DropsResultsAndTasksNotStarted") {
  Harness h;
  h.give(Harness::compute(1, "a"));  // runs and finishes: its result is stored
  REQUIRE(h.handed_to_executor().size() == 1);
  h.complete(1);
  REQUIRE(h.s.has_result(TaskId{1}));
  h.exec.is_idle = false;
  h.give(Harness::compute(2, "b"));  // queued at the executor, withdrawable
  REQUIRE(h.handed_to_executor() == std::vector<TaskId>{TaskId{2}});
  h.exec.queued.insert(2);
  auto waits = Harness::compute(3, "c");  // waits for an input from a peer
  waits.deps.push_back(DepLocation{TaskId{77}, {WorkerId{2}}, {"tcp://peer:1"}});
  h.give(std::move(waits));
  REQUIRE(h.s.is_pending(TaskId{3}));

  h.s.handle(ReleaseTasks{{TaskId{1}, TaskId{2}, TaskId{3}}}, h.now, h.out);
  CHECK_FALSE(h.s.has_result(TaskId{1}));
  CHECK_FALSE(h.s.is_pending(TaskId{2}));
  CHECK(h.exec.queued.empty());  // withdrawn from the executor
  CHECK_FALSE(h.s.is_pending(TaskId{3}));
}

TEST_CASE("WorkerState.Release.ARunningTasksResultIsDiscarded") {
  Harness h;
  h.exec.is_idle = false;
  auto m = Harness::compute(2, "b");
  m.push_to = {"client-data-id"};
  h.give(std::move(m));
  REQUIRE(h.handed_to_executor().size() == 1);  // running: not withdrawable
  h.s.handle(ReleaseTasks{{TaskId{2}}}, h.now, h.out);
  h.settle();
  h.complete(2);
  CHECK_FALSE(h.s.has_result(TaskId{2}));
  CHECK_FALSE(h.s.is_pending(TaskId{2}));
  CHECK(h.replies<ResultPushed>().empty());
  h.now += 10 * kPushedDoneDelayMs;
  CHECK(Harness::only<TaskDone>(h.settle()).empty());
}

// ---- early start and adoption ----

TEST_CASE("WorkerState.EarlyStart.TheComputeTaskAdoptsTheEarlyResult") {
  Harness h;
  h.quick_runs(kRunHereAfterQuickRuns);
  h.ask(Harness::start(7, "k"));
  REQUIRE(h.exec.ran_here.size() == 1);
  auto pushed = h.replies<ResultPushed>();
  REQUIRE(pushed.size() == 1);
  CHECK(pushed[0].first == "client-conn");
  CHECK(pushed[0].second.early);
  CHECK(pushed[0].second.key == "k");
  h.settle();
  h.out.replies.clear();

  auto m = Harness::compute(5, "k");
  m.early_nonce = 7;
  m.push_to = {"client-data-id"};
  h.give(std::move(m));
  CHECK(h.exec.ran_here.size() == 1);  // not run again
  CHECK(h.handed_to_executor().empty());
  CHECK(h.s.has_result(TaskId{5}));
  CHECK(Harness::only<TaskDone>(h.settle()).empty());  // held: the client has it
  h.now += kPushedDoneDelayMs;
  auto done = Harness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{5});
  CHECK(Codec<int>::decode(done[0].data) == 42);
}

TEST_CASE("WorkerState.EarlyStart.AnotherKeyRunsNormally") {
  Harness h;
  h.quick_runs(kRunHereAfterQuickRuns);
  h.ask(Harness::start(7, "k"));
  REQUIRE(h.exec.ran_here.size() == 1);
  h.exec.is_idle = false;  // so the ComputeTask's run shows as a job for the executor
  auto m = Harness::compute(5, "not-k");
  m.early_nonce = 7;
  h.give(std::move(m));
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{5}});
  CHECK_FALSE(h.s.has_result(TaskId{5}));
}

TEST_CASE("WorkerState.EarlyStart.AStartTaskAfterItsComputeTaskIsIgnored") {
  Harness h;
  h.quick_runs(kRunHereAfterQuickRuns);
  h.exec.is_idle = false;
  auto m = Harness::compute(5, "k");
  m.early_nonce = 7;
  h.give(std::move(m));
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{5}});
  h.complete(5);
  h.exec.is_idle = true;
  h.ask(Harness::start(7, "k"));
  CHECK(h.exec.ran_here.empty());
  CHECK(h.out.replies.empty());  // neither run nor NotStarted
}

TEST_CASE("WorkerState.EarlyStart.NotStartedWhenBusyOrNotKnownQuick") {
  Harness h;
  h.ask(Harness::start(7, "k"));  // no quick record yet
  auto ns = h.replies<NotStarted>();
  REQUIRE(ns.size() == 1);
  CHECK(ns[0].first == "client-conn");
  CHECK(ns[0].second.key == "k");
  h.out.replies.clear();
  h.quick_runs(kRunHereAfterQuickRuns);
  h.exec.is_idle = false;
  h.ask(Harness::start(8, "k2"));
  CHECK(h.replies<NotStarted>().size() == 1);
  CHECK(h.exec.ran_here.empty());
}

// ---- running on the loop thread: strikes and pardons ----

TEST_CASE("WorkerState.Strike.AnOverrunOnTheLoopThreadMeansEightQuickRunsAgain") {
  Harness h;
  h.quick_runs(kRunHereAfterQuickRuns - 1);
  h.give(Harness::compute(1, "a"));
  CHECK(h.exec.ran_here.empty());  // seven quick runs are not enough
  REQUIRE(h.handed_to_executor().size() == 1);
  h.complete(1);  // the eighth
  h.exec.run_ns = kOverrunNs;
  h.give(Harness::compute(2, "b"));
  REQUIRE(h.exec.ran_here.size() == 1);  // on the loop thread, and it overran: a strike
  CHECK(h.s.quick_runs().record(&kInc)->strikes == 1);
  h.exec.run_ns = kQuickNs;
  h.give(Harness::compute(3, "c"));
  CHECK(h.exec.ran_here.size() == 1);
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{3}});
  h.quick_runs(kRunHereAfterQuickRuns - 1);
  h.give(Harness::compute(4, "d"));
  CHECK(h.exec.ran_here.size() == 1);
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{4}});
  h.quick_runs(1);
  h.give(Harness::compute(5, "e"));
  CHECK(h.exec.ran_here.size() == 2);  // quick eight times again: back on the loop thread
  CHECK(h.handed_to_executor().empty());
}

namespace {
// Gives the default function its three strikes: each time quick enough to run on the loop thread,
// then one run there that overruns. Returns the next free task id.
std::uint64_t strike_out(Harness& h, std::uint64_t id = 1) {
  for (std::uint32_t strike = 0; strike < kRunHereMaxStrikes; ++strike) {
    h.quick_runs(kRunHereAfterQuickRuns);
    h.exec.run_ns = kOverrunNs;
    h.give(Harness::compute(id, "t" + std::to_string(id)));
    ++id;
    REQUIRE(h.exec.ran_here.size() == strike + 1);
  }
  h.exec.run_ns = kQuickNs;
  return id;
}
}  // namespace

TEST_CASE("WorkerState.Strike.ThreeStrikesAndTheFunctionStaysOffTheLoopThread") {
  Harness h;
  std::uint64_t id = strike_out(h);
  h.quick_runs(kRunHereAfterQuickRuns);
  h.give(Harness::compute(id, "last"));
  CHECK(h.exec.ran_here.size() == kRunHereMaxStrikes);
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{id}});
  // Another function keeps its own record.
  h.quick_runs(kRunHereAfterQuickRuns, &kOther);
  h.give(Harness::compute(id + 1, "other", "other"));
  CHECK(h.exec.ran_here.size() == kRunHereMaxStrikes + 1);
}

TEST_CASE("WorkerState.Pardon.AStrikeIsForgivenAfter1024QuickRuns") {
  Harness h;
  std::uint64_t id = strike_out(h);
  h.quick_runs(kQuickRunsPerPardon - 1);
  h.give(Harness::compute(id, "not-yet"));
  CHECK(h.exec.ran_here.size() == kRunHereMaxStrikes);  // still three strikes
  REQUIRE(h.handed_to_executor().size() == 1);
  h.complete(id);  // the 1,024th quick run: one strike forgiven
  ++id;
  CHECK(h.s.quick_runs().record(&kInc)->strikes == kRunHereMaxStrikes - 1);
  h.give(Harness::compute(id, "pardoned"));
  CHECK(h.exec.ran_here.size() == kRunHereMaxStrikes + 1);
}

TEST_CASE("WorkerState.RunOnLoop.OnlyOneJobAndAnIdleExecutor") {
  Harness h;
  h.quick_runs(kRunHereAfterQuickRuns);
  // Two jobs in one pass both go to the executor.
  h.s.handle(Harness::compute(1, "a"), h.now, h.out);
  h.s.handle(Harness::compute(2, "b"), h.now, h.out);
  REQUIRE(h.s.start_ready(h.out));
  CHECK(h.exec.ran_here.empty());
  CHECK(h.handed_to_executor().size() == 2);
  // A busy executor: to the executor too.
  h.exec.is_idle = false;
  h.give(Harness::compute(3, "c"));
  CHECK(h.exec.ran_here.empty());
  CHECK(h.handed_to_executor().size() == 1);
}

TEST_CASE("WorkerState.RunOnLoop.ALostLoopStopsThePass") {
  Harness h;
  h.quick_runs(kRunHereAfterQuickRuns);
  h.exec.lose_loop = true;
  h.s.handle(Harness::compute(1, "a"), h.now, h.out);
  CHECK_FALSE(h.s.start_ready(h.out));
  CHECK(h.exec.ran_here.size() == 1);
  CHECK(h.s.is_pending(TaskId{1}));  // its completion comes through the executor
  // The new owner of the loop runs nothing on its thread.
  h.give(Harness::compute(2, "b"));
  CHECK(h.exec.ran_here.size() == 1);
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{2}});
  h.complete(1, 100 * kRunHereMaxNs);
  CHECK(h.s.has_result(TaskId{1}));
}

// ---- fetching inputs ----

TEST_CASE("WorkerState.Fetch.ANotFoundOrSilentHolderMeansTheNextOne") {
  Harness h;
  auto m = Harness::compute_on(3, "c", 77, {2, 3, 4});
  h.give(std::move(m));
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{2});
  CHECK(h.out.to_peers[0].address == "tcp://p2");
  auto rid = std::get<GetData>(h.out.to_peers[0].msg).request_id;
  h.out.to_peers.clear();

  // Peer 2 does not have it: ask peer 3.
  h.s.handle_reply(DataReply{rid, {DataItem{TaskId{77}, false, {}}}}, 0, h.out);
  h.s.tick(h.now, h.out);
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{3});
  auto rid3 = std::get<GetData>(h.out.to_peers[0].msg).request_id;
  h.out.to_peers.clear();

  // Peer 3 stays silent past the timeout: ask peer 4.
  h.now += 101;
  h.s.tick(h.now, h.out);
  h.s.tick(h.now, h.out);
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{4});
  auto rid4 = std::get<GetData>(h.out.to_peers[0].msg).request_id;
  h.out.to_peers.clear();
  // Peer 3's late answer is ignored.
  h.s.handle_reply(DataReply{rid3, {DataItem{TaskId{77}, true, Codec<int>::encode(1)}}}, 0, h.out);
  CHECK_FALSE(h.s.has_result(TaskId{77}));

  // Peer 4 has it: the task runs and the scheduler hears of the replica.
  h.s.handle_reply(DataReply{rid4, {DataItem{TaskId{77}, true, Codec<int>::encode(1)}}}, 0, h.out);
  REQUIRE(h.s.start_ready(h.out));
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{3}});
  auto replicas = Harness::only<ReplicasAdded>(h.settle());
  REQUIRE(replicas.size() == 1);
  CHECK(replicas[0].tasks == std::vector<TaskId>{TaskId{77}});
}

TEST_CASE("WorkerState.Fetch.NoHolderLeftIsAFetchFailed") {
  Harness h;
  auto m = Harness::compute_on(3, "c", 77, {2, 3});
  h.give(std::move(m));
  REQUIRE(h.out.to_peers.size() == 1);
  auto rid = std::get<GetData>(h.out.to_peers[0].msg).request_id;
  h.out.to_peers.clear();
  h.s.handle_reply(DataReply{rid, {DataItem{TaskId{77}, false, {}}}}, 0, h.out);  // peer 2: not found
  h.s.tick(h.now, h.out);
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{3});
  h.out.to_peers.clear();
  CHECK(Harness::only<FetchFailed>(h.settle()).empty());
  h.now += 101;  // peer 3: silent
  h.s.tick(h.now, h.out);
  auto failed = Harness::only<FetchFailed>(h.settle());
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].task == TaskId{3});
  CHECK(failed[0].dep == TaskId{77});
  CHECK_FALSE(h.s.is_pending(TaskId{3}));
  CHECK(h.out.to_peers.empty());
}

TEST_CASE("WorkerState.Fetch.APeerThatLeftIsGivenUpAtOnce") {
  Harness h;
  auto m = Harness::compute_on(3, "c", 77, {2, 3});
  h.give(std::move(m));
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{2});
  h.out.to_peers.clear();
  // Peer 2 dies: the scheduler says so long before the fetch timeout; peer 3 is asked at once.
  h.s.handle(PeersChanged{{}, {WorkerId{2}}}, h.now, h.out);
  h.s.tick(h.now, h.out);
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{3});
  CHECK(Harness::only<FetchFailed>(h.settle()).empty());
}

TEST_CASE("WorkerState.Fetch.AHolderNamedLaterJoinsAFetchUnderWay") {
  Harness h;
  auto m = Harness::compute_on(3, "c", 77, {2});
  h.give(std::move(m));
  REQUIRE(h.out.to_peers.size() == 1);
  h.out.to_peers.clear();
  // Another task needs the same input, which now also lives on peer 5 (recomputed there).
  auto m2 = Harness::compute_on(4, "d", 77, {5});
  h.give(std::move(m2));
  CHECK(h.out.to_peers.empty());  // one fetch per input, already under way
  h.s.handle(PeersChanged{{}, {WorkerId{2}}}, h.now, h.out);
  h.s.tick(h.now, h.out);
  REQUIRE(h.out.to_peers.size() == 1);
  CHECK(h.out.to_peers[0].peer == WorkerId{5});
  CHECK(Harness::only<FetchFailed>(h.settle()).empty());
}

// ---- the switch ----

TEST_CASE("WorkerState.Switch.NoFastPathIsTakenWhenAllAreOff") {
  Harness h(FastPaths::none());
  h.quick_runs(2 * kRunHereAfterQuickRuns);
  // No run on the loop thread, no push, no hold.
  auto m = Harness::compute(1, "a");
  m.push_to = {"client-data-id"};
  h.give(std::move(m));
  CHECK(h.exec.ran_here.empty());
  REQUIRE(h.handed_to_executor() == std::vector<TaskId>{TaskId{1}});
  h.complete(1);
  CHECK(h.out.replies.empty());
  auto done = Harness::only<TaskDone>(h.settle());
  REQUIRE(done.size() == 1);
  CHECK(done[0].task == TaskId{1});
  // Every StartTask is answered NotStarted...
  h.ask(Harness::start(7, "k"));
  CHECK(h.exec.ran_here.empty());
  auto ns = h.replies<NotStarted>();
  REQUIRE(ns.size() == 1);
  CHECK(ns[0].second.key == "k");
  // ...and a ComputeTask naming it runs as any other.
  auto c = Harness::compute(2, "k");
  c.early_nonce = 7;
  h.give(std::move(c));
  CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{2}});
}

TEST_CASE("WorkerState.Switch.EachPathAlone") {
  SUBCASE("push_results off: nothing pushed, TaskDone at once") {
    FastPaths fp;
    fp.push_results = false;
    Harness h(fp);
    h.pushed_result(5);
    CHECK(h.out.replies.empty());
    CHECK(Harness::only<TaskDone>(h.settle()).size() == 1);
  }
  SUBCASE("hold_task_done off: pushed, TaskDone at once") {
    FastPaths fp;
    fp.hold_task_done = false;
    Harness h(fp);
    h.pushed_result(5);
    CHECK(h.replies<ResultPushed>().size() == 1);
    CHECK(Harness::only<TaskDone>(h.settle()).size() == 1);
  }
  SUBCASE("early_start off: a quick function's StartTask is answered NotStarted") {
    FastPaths fp;
    fp.early_start = false;
    Harness h(fp);
    h.quick_runs(kRunHereAfterQuickRuns);
    h.ask(Harness::start(7, "k"));
    CHECK(h.exec.ran_here.empty());
    CHECK(h.replies<NotStarted>().size() == 1);
    h.give(Harness::compute(1, "a"));  // the loop thread still runs quick tasks
    CHECK(h.exec.ran_here.size() == 1);
  }
  SUBCASE("run_on_loop off: quick functions go to the executor, early starts are not run") {
    FastPaths fp;
    fp.run_on_loop = false;
    Harness h(fp);
    h.quick_runs(kRunHereAfterQuickRuns);
    h.give(Harness::compute(1, "a"));
    CHECK(h.exec.ran_here.empty());
    CHECK(h.handed_to_executor().size() == 1);
    h.complete(1);
    h.ask(Harness::start(7, "k"));
    CHECK(h.exec.ran_here.empty());
    CHECK(h.replies<NotStarted>().size() == 1);
  }
}

// ---- the loop's takeover (the ownership state only; the standby thread is not started) ----

TEST_CASE("WorkerState.Takeover.TheStandbyTakesTheLoopFromARunSeenTwice") {
  LoopTakeover t;
  CHECK(t.ownership().owner == LoopOwner::loop_thread);
  const auto run = t.begin_run();
  CHECK(t.ownership().owner == LoopOwner::task_running_here);
  CHECK_FALSE(t.look());  // first sighting
  CHECK(t.look());        // the same run again: taken
  CHECK(t.ownership().owner == LoopOwner::standby);
  CHECK(t.taken());
  CHECK_FALSE(t.end_run(run));  // the old thread lost the loop
  CHECK(t.ownership().owner == LoopOwner::standby);
}

TEST_CASE("WorkerState.Takeover.AFreshRunIsNotMistakenForTheLastOne") {
  LoopTakeover t;
  auto run = t.begin_run();
  CHECK_FALSE(t.look());
  CHECK(t.end_run(run));
  CHECK_FALSE(t.look());  // nothing running
  run = t.begin_run();    // next generation
  CHECK_FALSE(t.look());
  CHECK(t.end_run(run));
  run = t.begin_run();
  CHECK_FALSE(t.look());
  CHECK(t.end_run(run));
  CHECK(t.ownership().owner == LoopOwner::loop_thread);
  CHECK(t.ownership().run == 3);
  CHECK_FALSE(t.taken());
}

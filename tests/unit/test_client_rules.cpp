// The client's pure decisions: what goes to the scheduler when (OutgoingQueue), and which submit starts early.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "client/early_start.hpp"
#include "client/outgoing.hpp"

using namespace dtask;
using namespace dtask::protocol;
using dtask::detail::EarlyStartContext;
using dtask::detail::OutgoingQueue;

namespace {

constexpr std::uint64_t t0 = 1000;

SubmitTasks submit_of(const std::string& key, std::uint64_t nonce = 0) {
  SubmitTasks m;
  TaskSpec& t = m.tasks.emplace_back();
  t.key = key;
  t.func = "inc";
  t.early_nonce = nonce;
  if (nonce) t.early_on = WorkerId{7};
  return m;
}

PushReceipt receipt_of(const std::string& key) { return PushReceipt{TaskId{1}, WorkerId{7}, 8, key}; }

// One letter per message, in sending order: S submit, R receipts, L releases, C cancel, I info.
std::string kinds(const std::vector<ClientToScheduler>& ms) {
  std::string out;
  for (const auto& m : ms) {
    if (std::holds_alternative<SubmitTasks>(m)) out += 'S';
    else if (std::holds_alternative<ResultsReceived>(m)) out += 'R';
    else if (std::holds_alternative<ReleaseKeys>(m)) out += 'L';
    else if (std::holds_alternative<CancelKeys>(m)) out += 'C';
    else if (std::holds_alternative<InfoRequest>(m)) out += 'I';
    else out += '?';
  }
  return out;
}

TaskSpec early_candidate() {
  TaskSpec t;
  t.key = "inc-1";
  t.func = "inc";
  t.push_result = true;
  t.args.emplace_back().kind = ClientArg::value;
  return t;
}

EarlyStartContext ready() {
  EarlyStartContext c;
  c.target_known = true;
  return c;
}

}  // namespace

TEST_CASE("ClientRules.Outgoing.UrgentGoesAtOnceAndNothingIsDueWhenEmpty") {
  OutgoingQueue q;
  CHECK(q.take_due(t0, false).empty());
  CHECK(q.due_ms() == 0);
  q.push(submit_of("a"));
  q.push(InfoRequest{1, {}, 0});
  auto out = q.take_due(t0, false);
  CHECK(kinds(out) == "SI");
  CHECK(q.take_due(t0, false).empty());
  CHECK(q.due_ms() == 0);
}

TEST_CASE("ClientRules.Outgoing.ReleasesWaitForTheHoldOrRideAlong") {
  OutgoingQueue q;
  q.release("a", t0);
  q.release("b", t0 + 1);  // batched into the same message
  CHECK(q.due_ms() == t0 + kEarlyHoldMs);
  CHECK(q.take_due(t0 + kEarlyHoldMs - 1, false).empty());
  auto out = q.take_due(t0 + kEarlyHoldMs, false);
  REQUIRE(kinds(out) == "L");
  CHECK(std::get<ReleaseKeys>(out[0]).keys == std::vector<std::string>{"a", "b"});
  CHECK(q.due_ms() == 0);
  // ...or they go at once with an urgent message, in the order queued.
  q.release("c", t0 + 10);
  q.push(CancelKeys{{"d"}});
  CHECK(kinds(q.take_due(t0 + 10, false)) == "LC");
}

TEST_CASE("ClientRules.Outgoing.ReceiptsNeverTravelAlone") {
  OutgoingQueue q;
  q.receipt(receipt_of(""));
  CHECK(q.take_due(t0, false).empty());
  CHECK(q.take_due(t0 + 1000, false).empty());
  CHECK(q.take_due(t0 + 1000, true).empty());  // not even forced
  CHECK(q.due_ms() == 0);                      // and the I/O thread need not wake for them
  // They go before the next message: the scheduler must see a task done before it is released.
  q.release("x", t0);
  auto out = q.take_due(t0 + kEarlyHoldMs, false);
  REQUIRE(kinds(out) == "RL");
  CHECK(std::get<ResultsReceived>(out[0]).receipts.size() == 1);
  q.receipt(receipt_of(""));
  q.receipt(receipt_of(""));
  q.push(submit_of("y"));
  out = q.take_due(t0, false);
  REQUIRE(kinds(out) == "RS");
  CHECK(std::get<ResultsReceived>(out[0]).receipts.size() == 2);
}

TEST_CASE("ClientRules.Outgoing.HeldSubmitsGoFirstAndInOrder") {
  OutgoingQueue q;
  q.hold(submit_of("e1", 1), t0);
  q.hold(ResultsReceived{{receipt_of("e1")}}, t0 + 1);  // the early result came back
  q.hold(submit_of("e2", 3), t0 + 2);
  CHECK(q.due_ms() == t0 + kEarlyHoldMs);  // from the first one held
  q.receipt(receipt_of(""));
  q.release("old", t0 + 2);
  CHECK(q.take_due(t0 + kEarlyHoldMs - 1, false).empty());
  auto out = q.take_due(t0 + kEarlyHoldMs, false);
  // Held submits (with their receipts) first, then plain receipts, then the rest.
  REQUIRE(kinds(out) == "SRSRL");
  CHECK(std::get<SubmitTasks>(out[0]).tasks[0].key == "e1");
  CHECK(std::get<ResultsReceived>(out[1]).receipts[0].key == "e1");
  CHECK(std::get<SubmitTasks>(out[2]).tasks[0].key == "e2");
  CHECK(q.due_ms() == 0);
}

TEST_CASE("ClientRules.Outgoing.AnUrgentMessageOrAForceTakesTheHeldAlong") {
  OutgoingQueue q;
  q.hold(submit_of("e1", 1), t0);
  q.push(InfoRequest{4, {}, 0});
  CHECK(kinds(q.take_due(t0, false)) == "SI");
  q.hold(submit_of("e2", 3), t0);
  CHECK(q.take_due(t0, false).empty());
  CHECK(kinds(q.take_due(t0, true)) == "S");  // a NotStarted: the scheduler must hear of it now
}

TEST_CASE("ClientRules.Outgoing.AStartTaskThatCouldNotGoIsUnmarked") {
  OutgoingQueue q;
  q.hold(submit_of("e1", 1), t0);
  q.hold(submit_of("e2", 3), t0);
  q.unmark_early("e2");
  auto out = q.take_due(t0, true);
  REQUIRE(out.size() == 2);
  const TaskSpec& kept = std::get<SubmitTasks>(out[0]).tasks[0];
  CHECK(kept.early_nonce == 1);
  CHECK(kept.early_on == WorkerId{7});
  const TaskSpec& unmarked = std::get<SubmitTasks>(out[1]).tasks[0];
  CHECK(unmarked.early_nonce == 0);
  CHECK(unmarked.early_on == WorkerId{});
}

TEST_CASE("ClientRules.EarlyStart.AQualifyingSubmit") {
  CHECK(detail::may_start_early(FastPaths::all(), early_candidate(), ready()));
  TaskSpec no_args = early_candidate();
  no_args.args.clear();
  CHECK(detail::may_start_early(FastPaths::all(), no_args, ready()));
}

TEST_CASE("ClientRules.EarlyStart.NeedsATargetAndOneAtATime") {
  const TaskSpec t = early_candidate();
  EarlyStartContext c = ready();
  c.target_known = false;  // no worker has pushed a result here yet
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, c));
  c = ready();
  c.previous_pending = true;
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, c));
  c = ready();
  c.key_known = true;  // a key already submitted: the scheduler may hold it
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, c));
}

TEST_CASE("ClientRules.EarlyStart.OnlyPushedTasksWithoutPlacementWishesOrInputs") {
  TaskSpec t = early_candidate();
  t.push_result = false;
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, ready()));
  t = early_candidate();
  t.workers = {"1"};
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, ready()));
  t = early_candidate();
  t.resources = {{"GPU", 1}};
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, ready()));
  t = early_candidate();
  ClientArg& dep = t.args.emplace_back();
  dep.kind = ClientArg::dep;
  dep.refs = {"other-key"};
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, ready()));
  t = early_candidate();
  ClientArg& deps = t.args.emplace_back();
  deps.kind = ClientArg::dep_list;
  deps.refs = {"k1", "k2"};
  CHECK_FALSE(detail::may_start_early(FastPaths::all(), t, ready()));
}

TEST_CASE("ClientRules.EarlyStart.TheSwitchesTurnItOff") {
  FastPaths f = FastPaths::all();
  f.early_start = false;
  CHECK_FALSE(detail::may_start_early(f, early_candidate(), ready()));
  f = FastPaths::all();
  f.push_results = false;
  CHECK_FALSE(detail::may_start_early(f, early_candidate(), ready()));
  f = FastPaths::all();
  f.run_on_loop = false;  // the worker would decline every StartTask
  CHECK_FALSE(detail::may_start_early(f, early_candidate(), ready()));
  CHECK_FALSE(detail::may_start_early(FastPaths::none(), early_candidate(), ready()));
}

// ---- which worker an early start goes to (EarlyTargets): issue 14's load spreading ----
namespace {
using dtask::detail::EarlyTargets;

std::string addr(int i) { return "tcp://10.0.0." + std::to_string(i) + ":7000"; }

// What next() answers, as the targets' numbers, '-' for "left to the scheduler".
std::string picks(EarlyTargets& t, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    const auto* p = t.next();
    s += p ? static_cast<char>('0' + p->worker.value) : '-';
  }
  return s;
}
}  // namespace

TEST_CASE("ClientRules.EarlyTargets.EachTargetGetsARunThenTheNext") {
  EarlyTargets t{3};
  CHECK(t.next() == nullptr);  // nobody pushed here yet: the scheduler places it
  t.learn(WorkerId{1}, addr(1));
  t.learn(WorkerId{2}, addr(2));
  t.learn(WorkerId{2}, addr(2));  // known already: still two
  CHECK(picks(t, 4) == "222-");     // a run of three, then one is left to the scheduler...
  CHECK(picks(t, 7) == "111222-");  // ...which found no one new: twice as long before the next
}

TEST_CASE("ClientRules.EarlyTargets.AnExplorationThatFindsAWorkerGivesItTheNextRun") {
  EarlyTargets t{2};
  t.learn(WorkerId{1}, addr(1));
  CHECK(picks(t, 3) == "11-");
  t.learn(WorkerId{2}, addr(2));  // the scheduler placed the explored task on a new worker
  CHECK(picks(t, 3) == "22-");    // its run at once, and explore again soon
  CHECK(picks(t, 5) == "1122-");  // nothing new: the gap doubles
  CHECK(picks(t, 9) == "11221122-");
}

TEST_CASE("ClientRules.EarlyTargets.ADeclineEndsTheRun") {
  EarlyTargets t{3};
  t.learn(WorkerId{1}, addr(1));
  t.learn(WorkerId{2}, addr(2));
  CHECK(picks(t, 1) == "2");
  t.declined(addr(1));  // not the current target: nothing changes
  CHECK(picks(t, 1) == "2");
  t.declined(addr(2));
  CHECK(picks(t, 1) == "1");  // the next target at once, not the rest of 2's run
}

TEST_CASE("ClientRules.EarlyTargets.TheBackOffStopsAtMaxGap") {
  EarlyTargets t{1};
  t.learn(WorkerId{1}, addr(1));
  int explorations = 0;
  std::size_t since = 0, longest = 0;
  for (int i = 0; i < 5000; ++i) {
    if (t.next()) {
      ++since;
    } else {
      ++explorations;
      longest = std::max(longest, since);
      since = 0;
    }
  }
  CHECK(longest == EarlyTargets::kMaxGap);  // a worker that joins later is still found...
  CHECK(explorations < 5000 / static_cast<int>(EarlyTargets::kMaxGap) + 12);  // ...and W3 rarely pays
}

TEST_CASE("ClientRules.EarlyTargets.AForgottenWorkerIsNotAskedUntilItPushesAgain") {
  EarlyTargets t{1};
  t.learn(WorkerId{1}, addr(1));
  t.learn(WorkerId{2}, addr(2));
  t.forget(addr(1));
  CHECK(picks(t, 2) == "2-");
  CHECK(picks(t, 3) == "22-");
  t.learn(WorkerId{1}, addr(1));  // it pushed a result again
  CHECK(picks(t, 2) == "1-");
}

TEST_CASE("ClientRules.EarlyTargets.ARestartedWorkerAtTheSameAddressIsAskedUnderItsNewId") {
  EarlyTargets t{1};
  t.learn(WorkerId{1}, addr(1));
  t.learn(WorkerId{5}, addr(1));
  CHECK(picks(t, 1) == "5");
}

// The two rules together, as a submit-result loop meets them on an idle cluster of four: an
// early start runs where the client sent it; a task left to the scheduler goes to the next
// worker in turn (dispatch's rotating deal, tests/unit/test_scheduler_placement.cpp); whoever
// ran it pushes the result and becomes a target. Every worker gets a share.
TEST_CASE("ClientRules.EarlyTargets.ASubmitResultLoopSpreadsOverTheCluster") {
  EarlyTargets t;
  std::map<int, int> ran;
  int deal = 0;
  for (int i = 0; i < 200; ++i) {
    const auto* p = t.next();
    int w = p ? static_cast<int>(p->worker.value) : (deal++ % 4) + 1;
    ++ran[w];
    t.learn(WorkerId{static_cast<std::uint32_t>(w)}, addr(w));
  }
  REQUIRE(ran.size() == 4);
  for (auto [w, n] : ran) {
    CAPTURE(w);
    CHECK(n >= 30);
    CHECK(n <= 70);
  }
}

// The scheduler's memory rules (memory.cpp): reports recorded and shown, paused workers, the no-spill preference.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "test_scheduler_harness.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::scheduler;
using dtask::test::Harness;

namespace {

SchedulerConfig no_dealing_ahead() {
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 1;
  cfg.saturation_extra = 0;
  return cfg;
}

void report(Harness& h, WorkerId w, std::uint64_t held, std::uint64_t limit, bool paused) {
  MemoryReport m;
  m.held = held;
  m.limit = limit;
  m.paused = paused;
  h.s.handle(w, m, h.now, h.out);
}

void pause(Harness& h, WorkerId w) { report(h, w, 900, 1000, true); }
void resume(Harness& h, WorkerId w) { report(h, w, 100, 1000, false); }

// A task that asks for resource "slot" (1): it goes through decide_worker, not the root queue.
TaskSpec needs_slot(const std::string& key, const std::string& func = "load") {
  auto t = Harness::spec(key, func);
  t.resources = {{"slot", 1.0}};
  return t;
}

std::map<std::string, WorkerId> placed(Harness& h) {
  std::map<std::string, WorkerId> r;
  for (auto& [w, c] : h.computes()) r[c.key] = w;
  return r;
}

// Keeps the time moving with the client and these workers alive (tick() declares silent peers dead).
void advance(Harness& h, std::uint64_t ms, std::initializer_list<WorkerId> alive) {
  h.now += ms;
  h.s.handle(h.client, Heartbeat{h.now}, h.now, h.out);
  for (auto w : alive) h.s.handle(w, Heartbeat{h.now}, h.now, h.out);
  h.s.tick(h.now, h.out);
}

}  // namespace

TEST_CASE("Memory.Report.RecordedAndShownInInfo") {
  Harness h;
  auto a = h.worker("a");
  auto b = h.worker("b");
  MemoryReport m{1000, 2000, 3, 5000, 8000, false};
  h.s.handle(a, m, h.now, h.out);
  auto info = h.s.info();
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& w : info["workers"]) by_name[w["name"].get<std::string>()] = w;
  CHECK(by_name["a"]["memory_held"] == 1000);
  CHECK(by_name["a"]["memory_spilled"] == 2000);
  CHECK(by_name["a"]["spilled_count"] == 3);
  CHECK(by_name["a"]["memory_process"] == 5000);
  CHECK(by_name["a"]["memory_limit"] == 8000);
  CHECK(by_name["a"]["paused"] == false);
  // A worker that sent no report shows zeros.
  CHECK(by_name["b"]["memory_held"] == 0);
  CHECK(by_name["b"]["paused"] == false);
  CHECK(info["worker_pauses"] == 0);
  // The newest report replaces the last.
  h.s.handle(a, MemoryReport{10, 0, 0, 0, 8000, true}, h.now, h.out);
  info = h.s.info();
  for (const auto& w : info["workers"]) {
    if (w["name"] == "a") {
      CHECK(w["memory_held"] == 10);
      CHECK(w["memory_spilled"] == 0);
      CHECK(w["paused"] == true);
    }
  }
  (void)b;
}

TEST_CASE("Memory.Pause.PausedWorkerGetsNothingNewWhileAnotherGetsTheWork") {
  Harness h;
  auto a = h.worker("a", 1, {{"slot", 1.0}});
  auto b = h.worker("b", 1, {{"slot", 1.0}});
  pause(h, a);
  // Roots (the root dealing), tasks placed by decide_worker, and a task whose input is on the paused worker.
  h.submit(Harness::roots("r", 6, "inc"));
  h.submit({needs_slot("s1"), needs_slot("s2")});
  auto p = placed(h);
  REQUIRE(p.size() == 8);
  for (auto& [key, w] : p) CHECK_MESSAGE(w == b, key);
  CHECK(h.s.worker(a)->processing.empty());
}

TEST_CASE("Memory.Pause.InputOnAPausedWorkerRunsElsewhere") {
  Harness h;
  auto a = h.worker("a");
  auto b = h.worker("b");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  h.done(wx, cx, 1000);
  WorkerId other = wx == a ? b : a;
  pause(h, wx);
  h.submit({Harness::spec("z", "inc", {"x"})});
  CHECK(h.compute_of("z").first == other);
}

TEST_CASE("Memory.Pause.ResumeDispatchesWaitingWork") {
  Harness h(no_dealing_ahead());  // one task per worker thread at a time
  auto a = h.worker("a");
  auto b = h.worker("b");
  pause(h, a);
  h.submit(Harness::roots("r", 3, "inc"));
  auto first = placed(h);
  REQUIRE(first.size() == 1);  // b is full, a paused: two wait in the queue
  CHECK(first.begin()->second == b);
  resume(h, a);
  auto then = placed(h);
  REQUIRE(then.size() == 1);
  CHECK(then.begin()->second == a);
}

TEST_CASE("Memory.Pause.AllPausedWaitWithoutErrorThenRunAfterResume") {
  Harness h;
  auto a = h.worker("a", 1, {{"slot", 1.0}});
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  h.done(wx, cx, 10);
  pause(h, a);
  h.submit(Harness::roots("r", 2, "inc"));
  h.submit({Harness::spec("z", "inc", {"x"}), needs_slot("s")});
  CHECK(h.computes().empty());
  // Far past no_worker_timeout_ms: tasks a paused worker may run wait for it, they do not fail.
  for (int i = 0; i < 10; ++i) advance(h, 4000, {a});
  CHECK(h.computes().empty());
  CHECK(h.to_client<KeyErred>().empty());
  CHECK(h.state_of("z") == TaskState::queued);
  CHECK(h.state_of("s") == TaskState::queued);
  resume(h, a);
  auto p = placed(h);
  CHECK(p.count("r0") == 1);
  CHECK(p.count("r1") == 1);
  CHECK(p.count("z") == 1);
  CHECK(p.count("s") == 1);
  for (auto& [key, w] : p) CHECK_MESSAGE(w == a, key);
}

TEST_CASE("Memory.Pause.WorkerPausesCountsTransitions") {
  Harness h;
  auto a = h.worker("a");
  auto b = h.worker("b");
  pause(h, a);
  pause(h, a);  // still paused: not a new pause
  pause(h, b);
  resume(h, a);
  resume(h, a);
  pause(h, a);
  CHECK(h.s.info()["worker_pauses"] == 3);
  CHECK(h.s.info()["counters"]["worker_pauses"] == 3);
}

// Stealing from a paused worker: every task it holds counts as waiting (it starts nothing), and
// all may go, where a running worker keeps its threads' share and gives at most half of the rest.
std::vector<TaskId> steals_from(Harness& h, WorkerId victim) {
  std::vector<TaskId> asked;
  for (auto& [w, m] : h.out.to_workers) {
    if (auto* sr = std::get_if<StealRequest>(&m)) {
      CHECK(w == victim);
      asked.push_back(sr->task);
    }
  }
  return asked;
}

TEST_CASE("Memory.Pause.IdleWorkerStealsTheOneTaskWaitingOnAPausedWorker") {
  Harness h;
  auto a = h.worker("a");  // one thread, one task: nothing waits behind a running worker's thread
  h.submit(Harness::roots("r", 1, "inc"));
  REQUIRE(placed(h).size() == 1);
  auto b = h.worker("b");
  advance(h, 500, {a, b});
  CHECK(steals_from(h, a).empty());
  pause(h, a);
  advance(h, 500, {a, b});
  auto asked = steals_from(h, a);
  REQUIRE(asked.size() == 1);
  h.s.handle(a, StealReply{asked[0], true}, h.now, h.out);
  auto p = placed(h);
  REQUIRE(p.size() == 1);
  CHECK(p.begin()->second == b);
}

TEST_CASE("Memory.Pause.IdleWorkerMayStealEverythingFromAPausedWorker") {
  Harness h;
  auto a = h.worker("a", 2);
  h.submit(Harness::roots("r", 4, "inc"));
  REQUIRE(placed(h).size() == 4);
  auto b = h.worker("b", 4);
  pause(h, a);
  advance(h, 500, {a, b});
  auto asked = steals_from(h, a);
  // All four asked for: the two it had started refuse, the two waiting move to b.
  REQUIRE(asked.size() == 4);
  h.s.handle(a, StealReply{asked[0], false}, h.now, h.out);
  h.s.handle(a, StealReply{asked[1], false}, h.now, h.out);
  h.s.handle(a, StealReply{asked[2], true}, h.now, h.out);
  h.s.handle(a, StealReply{asked[3], true}, h.now, h.out);
  auto p = placed(h);
  CHECK(p.size() == 2);
  for (auto& [key, w] : p) CHECK(w == b);
  CHECK(h.s.worker(a)->processing.size() == 2);
}

TEST_CASE("Memory.Placement.PrefersTheWorkerWhereTheResultDoesNotForceASpill") {
  Harness h;
  auto a = h.worker("a", 1, {{"slot", 1.0}});
  auto b = h.worker("b", 1, {{"slot", 1.0}});
  report(h, a, 700, 1000, false);  // above the target (60 % of 1000)
  report(h, b, 100, 1000, false);
  // Equally idle each time: without the preference the rotating start would alternate them.
  for (int i = 0; i < 4; ++i) {
    h.submit({needs_slot("t" + std::to_string(i), "tiny")});
    auto [w, c] = h.compute_of("t" + std::to_string(i));
    CHECK(w == b);
    h.done(w, c, 0);
  }
}

TEST_CASE("Memory.Placement.ExpectedResultDecidesWhichWorkerHasRoom") {
  Harness h;
  auto a = h.worker("a", 1, {{"slot", 1.0}});
  auto b = h.worker("b", 1, {{"slot", 1.0}});
  // "load" results weigh 200 bytes: a (500 held) would pass 600, b (300 held) would not.
  h.submit({needs_slot("first")});
  auto [w0, c0] = h.compute_of("first");
  h.done(w0, c0, 200);
  h.s.handle(h.client, ReleaseKeys{{"first"}}, h.now, h.out);
  report(h, a, 500, 1000, false);
  report(h, b, 300, 1000, false);
  for (int i = 0; i < 4; ++i) {
    h.submit({needs_slot("t" + std::to_string(i))});
    auto [w, c] = h.compute_of("t" + std::to_string(i));
    CHECK(w == b);
    h.done(w, c, 200);
    h.s.handle(h.client, ReleaseKeys{{"t" + std::to_string(i)}}, h.now, h.out);
    report(h, a, 500, 1000, false);
    report(h, b, 300, 1000, false);
  }
}

TEST_CASE("Memory.Placement.NoLimitOrAFullClusterIsNotAvoided") {
  Harness h;
  auto a = h.worker("a", 1, {{"slot", 1.0}});
  auto b = h.worker("b", 1, {{"slot", 1.0}});
  auto spread = [&] {
    std::set<WorkerId> used;
    for (int i = 0; i < 4; ++i) {
      static int n = 0;
      std::string key = "t" + std::to_string(n++);
      h.submit({needs_slot(key, "tiny")});
      auto [w, c] = h.compute_of(key);
      used.insert(w);
      h.done(w, c, 0);
    }
    return used.size();
  };
  // a has no limit: however much it holds, it is not penalised against b with room.
  report(h, a, 1u << 30, 0, false);
  report(h, b, 100, 1000, false);
  CHECK(spread() == 2);
  // Both above the target: still both used (a preference, not a rule).
  report(h, a, 900, 1000, false);
  report(h, b, 900, 1000, false);
  CHECK(spread() == 2);
}

TEST_CASE("Memory.Report.WorkerThatLeavesDropsItsReport") {
  Harness h;
  auto a = h.worker("a");
  pause(h, a);
  h.s.handle(a, WorkerGoodbye{}, h.now, h.out);
  CHECK(h.s.info()["workers"].empty());
  CHECK_FALSE(h.s.worker(a)->memory_reported);
  CHECK_FALSE(h.s.worker(a)->paused());
  // Its successor under the same name starts unpaused and gets the work.
  h.submit(Harness::roots("r", 1, "inc"));
  auto a2 = h.worker("a");
  CHECK(h.compute_of("r0").first == a2);
  CHECK(h.s.info()["workers"][0]["paused"] == false);
  CHECK(h.s.info()["worker_pauses"] == 1);  // a count of events, not of workers paused now
}

TEST_CASE("Memory.Pause.TaskStartedEarlyOnAPausedWorkerIsPlacedElsewhere") {
  Harness h;  // fast paths on: the early-start placement is what is checked
  auto a = h.worker("a");
  auto b = h.worker("b");
  pause(h, b);
  h.submit({Harness::early_spec("e", 77, b)});
  auto [w, c] = h.compute_of("e");
  CHECK(w == a);
  CHECK(c.early_nonce == 0);
  CHECK(h.s.info()["placed_where_started_early"] == 0);
}

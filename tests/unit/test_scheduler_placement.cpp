// The scheduler's placement rules (placement.cpp), one rule per case: locality, dealing, capacity, stealing, resources.
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

// x on one worker, y on the other, with these result sizes; returns (holder of x, holder of y).
std::pair<WorkerId, WorkerId> two_inputs(Harness& h, std::uint64_t x_bytes, std::uint64_t y_bytes) {
  h.submit({Harness::spec("x", "inc"), Harness::spec("y", "inc")});  // wanted: they stay in memory
  std::map<std::string, std::pair<WorkerId, ComputeTask>> c;
  for (auto& wc : h.computes()) c[wc.second.key] = wc;
  REQUIRE(c.size() == 2);
  auto [wx, cx] = c["x"];
  auto [wy, cy] = c["y"];
  h.done(wx, cx, x_bytes);
  h.done(wy, cy, y_bytes);
  REQUIRE(wx != wy);
  return {wx, wy};
}

// Keeps worker `name` busy with one task pinned to it.
void occupy(Harness& h, const std::string& name, const std::string& key) {
  auto t = Harness::spec(key, "slow_inc");
  t.workers = {name};
  h.submit({t});
  REQUIRE(h.compute_of(key).first == h.s.worker_by_identity("wid-" + name)->id);
}

std::vector<std::pair<WorkerId, TaskId>> steal_requests(Harness& h) {
  std::vector<std::pair<WorkerId, TaskId>> r;
  for (auto& [w, m] : h.out.to_workers) {
    if (auto* sr = std::get_if<StealRequest>(&m)) r.emplace_back(w, sr->task);
  }
  return r;
}

}  // namespace

TEST_CASE("Placement.Decide.MostInputBytesWinOverALessBusyWorker") {
  Harness h(no_dealing_ahead());
  h.worker("a");
  h.worker("b");
  auto [wx, wy] = two_inputs(h, 1000, 10);
  occupy(h, h.s.worker(wx)->info.name, "busy");  // x's holder is now the busier one
  h.submit({Harness::spec("z", "add", {"x", "y"})});
  CHECK(h.compute_of("z").first == wx);
}

TEST_CASE("Placement.Decide.EqualInputBytesGoToTheLessBusyHolder") {
  Harness h(no_dealing_ahead());
  h.worker("a");
  h.worker("b");
  auto [wx, wy] = two_inputs(h, 100, 100);
  occupy(h, h.s.worker(wx)->info.name, "busy");
  h.submit({Harness::spec("z", "add", {"x", "y"})});
  CHECK(h.compute_of("z").first == wy);
}

TEST_CASE("Placement.Decide.WithoutHoldersTheLeastBusyWorker") {
  Harness h(no_dealing_ahead());
  h.worker("a");
  auto b = h.worker("b");
  occupy(h, "a", "busy1");
  occupy(h, "a", "busy2");
  // Pinned to both: not a root, placed at once by decide_worker, never by the root queue. Both go
  // to b (0, then 1 task, against a's 2), whatever worker the round-robin scan starts from.
  for (const char* key : {"p", "q"}) {
    auto t = Harness::spec(key, "inc");
    t.workers = {"a", "b"};
    h.submit({t});
  }
  auto cs = h.computes();
  REQUIRE(cs.size() == 2);
  for (auto& [w, c] : cs) CHECK(w == b);
}

TEST_CASE("Placement.Dispatch.RootsAreDealtOnePerWorkerPerPass") {
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 4;  // each worker could hold all four at once
  cfg.saturation_extra = 0;
  Harness h(cfg);
  auto a = h.worker("a");
  auto b = h.worker("b");
  h.submit(Harness::roots("r", 4, "inc"));
  std::map<WorkerId, int> n;
  for (auto& [w, c] : h.computes()) ++n[w];
  CHECK(n[a] == 2);
  CHECK(n[b] == 2);
}

// Issue 14's load spreading: submit(f).result() in a loop on an idle cluster, one root task at a
// time, must visit every worker (it all went to the first worker in room_ before).
TEST_CASE("Placement.Dispatch.SequentialRootsVisitEveryIdleWorkerInTurn") {
  Harness h;
  std::vector<WorkerId> ws{h.worker("a"), h.worker("b"), h.worker("c"), h.worker("d")};
  std::map<WorkerId, int> n;
  for (int i = 0; i < 12; ++i) {
    h.submit({Harness::spec("r" + std::to_string(i), "inc")});
    auto cs = h.computes();
    REQUIRE(cs.size() == 1);
    ++n[cs[0].first];
    h.done(cs[0].first, cs[0].second);
  }
  for (auto w : ws) CHECK(n[w] == 3);
}

// Among workers with room, the idle ones come first: a worker still running a task is passed
// over while another has a free thread, even when the rotation points at the busy one.
TEST_CASE("Placement.Dispatch.AnIdleWorkerBeforeABusyOneWithRoom") {
  Harness h;
  auto a = h.worker("a");
  auto b = h.worker("b");
  auto c = h.worker("c");
  h.submit({Harness::spec("r0", "inc")});
  auto r0 = h.computes();
  REQUIRE(r0.size() == 1);
  CHECK(r0[0].first == a);  // a stays busy with r0 from here on
  h.submit({Harness::spec("r1", "inc")});
  auto r1 = h.compute_of("r1");
  CHECK(r1.first == b);
  h.done(r1.first, r1.second);
  h.submit({Harness::spec("r2", "inc")});
  CHECK(h.compute_of("r2").first == c);  // c is still busy with r2 too
  // The rotation is back at a, which has room (capacity > 1) but no free thread: b gets it.
  h.submit({Harness::spec("r3", "inc")});
  CHECK(h.compute_of("r3").first == b);
}

TEST_CASE("Placement.Capacity.ThreadsTimesSaturationPlusExtraWhileResultsAreSmall") {
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 1.5;
  cfg.saturation_extra = 4;
  cfg.saturation_extra_max_result_bytes = 1000;
  Harness h(cfg);
  auto w = h.worker("0", 3);
  CHECK(h.s.capacity(*h.s.worker(w)) == 9);  // ceil(3 * 1.5) + 4
  CHECK(h.s.worker(w)->capacity == 9);
  h.submit(Harness::roots("r", 30, "inc"));
  auto first = h.computes();
  CHECK(first.size() == 9);
  // One big result: the average passes the limit, the extra goes, and nothing more is dealt
  // until fewer than ceil(3 * 1.5) = 5 are in flight.
  h.done(w, first[0].second, 1 << 20);
  CHECK(h.s.worker(w)->capacity == 5);
  CHECK(h.computes().empty());
}

TEST_CASE("Placement.Steal.NeverMoreThanHalfOfTheSurplus") {
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 1;
  cfg.saturation_extra = 20;
  Harness h(cfg);
  auto busy = h.worker("0");
  h.submit(Harness::roots("t", 12, "slow_inc"));
  REQUIRE(h.computes().size() == 12);  // 1 running, 11 waiting behind its one thread
  for (int i = 1; i <= 8; ++i) h.worker(std::to_string(i));
  h.out = {};
  h.s.tick(h.now, h.out);
  auto asked = steal_requests(h);
  CHECK(asked.size() == 5);  // 11 / 2, although 8 threads are idle
  for (auto& [w, id] : asked) CHECK(w == busy);
}

TEST_CASE("Placement.Steal.OnlyForAThiefThatMayRunTheTask") {
  Harness h;
  auto gpu = h.worker("g", 1, {{"GPU", 1}});
  std::vector<TaskSpec> specs;
  for (int i = 0; i < 6; ++i) {
    auto t = Harness::spec("t" + std::to_string(i), "slow_inc");
    t.resources = {{"GPU", 1}};
    specs.push_back(t);
  }
  h.submit(specs);
  for (auto& [w, c] : h.computes()) REQUIRE(w == gpu);
  h.worker("plain1");
  h.worker("plain2");
  h.out = {};
  h.s.tick(h.now, h.out);
  CHECK(steal_requests(h).empty());  // idle, but without the resource
  auto gpu2 = h.worker("g2", 1, {{"GPU", 1}});
  h.out = {};
  h.s.tick(h.now, h.out);
  auto asked = steal_requests(h);
  REQUIRE(asked.size() == 1);  // one idle thread that may run them
  CHECK(asked[0].first == gpu);
  CHECK(h.s.worker(gpu2)->stealing_in == 1);
}

TEST_CASE("Placement.Resources.TheAmountMustSuffice") {
  Harness h;
  h.worker("small", 1, {{"GPU", 1}});
  auto t = Harness::spec("big", "inc");
  t.resources = {{"GPU", 2}};
  h.submit({t});
  CHECK(h.computes().empty());
  CHECK(h.state_of("big") == TaskState::queued);
  auto large = h.worker("large", 1, {{"GPU", 4}});
  CHECK(h.compute_of("big").first == large);
}

// The scheduler obeys SchedulerConfig::fast_paths: pushed results and early placement each switch off alone.
#include <doctest/doctest.h>

#include <map>

#include "test_scheduler_harness.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::scheduler;
using dtask::test::Harness;

namespace {

FastPaths without_push() {
  FastPaths p;
  p.push_results = false;
  return p;
}

FastPaths without_early() {
  FastPaths p;
  p.early_start = false;
  return p;
}

}  // namespace

TEST_CASE("FastPaths.None.NoPushToAndReceiptsChangeNothing") {
  Harness h(Harness::config(FastPaths::none()));
  WorkerId w = h.worker("a");
  auto p = Harness::spec("p", "inc");
  p.push_result = true;
  auto d = Harness::spec("d", "inc", {"p"});  // something waits for p's result
  h.submit({p, d});
  auto [pw, pc] = h.compute_of("p");
  REQUIRE(pw == w);
  CHECK(pc.push_to.empty());
  CHECK_FALSE(pc.dependents_waiting);
  CHECK_FALSE(h.s.find("p")->push_result);
  // A receipt (a client of the other setting, or a confused one) is ignored safely...
  h.out = {};
  auto stale_before = h.s.stale_messages();
  h.s.handle(h.client, ResultsReceived{{PushReceipt{pc.task, w, 8, {}}}}, h.now, h.out);
  CHECK(h.state_of("p") == TaskState::processing);
  CHECK(h.out.empty());
  CHECK(h.s.stale_messages() == stale_before + 1);
  CHECK(h.s.info()["completions_reported_by_clients"].get<std::uint64_t>() == 0);
  // ...and the worker's TaskDone completes it, the value going to the client in KeyDone.
  Payload small = Codec<int>::encode(2);
  h.s.handle(w, TaskDone{pc.task, small.nbytes(), true, small}, h.now, h.out);
  CHECK(h.state_of("p") == TaskState::memory);
  auto dones = h.to_client<KeyDone>();
  REQUIRE(dones.size() == 1);
  CHECK(dones[0].has_data);
}

TEST_CASE("FastPaths.None.EarlyNonceIgnoredAndUsualPlacement") {
  Harness h(Harness::config(FastPaths::none()));
  WorkerId a = h.worker("a");
  WorkerId b = h.worker("b");
  h.submit({Harness::early_spec("e", 77, b)});
  auto [ew, ec] = h.compute_of("e");
  CHECK(ew == a);  // where any root goes first (see Scheduler.Early.PlacedWhereStarted), not b
  CHECK(ec.early_nonce == 0);
  CHECK(ec.push_to.empty());
  CHECK(h.s.info()["placed_where_started_early"].get<std::uint64_t>() == 0);
  CHECK(h.s.info()["counters"]["placed_where_started_early"].get<std::uint64_t>() == 0);
}

TEST_CASE("FastPaths.PushResultsOff.EarlyStartStillPlaces") {
  Harness h(Harness::config(without_push()));
  h.worker("a");
  WorkerId b = h.worker("b");
  h.submit({Harness::early_spec("e", 77, b)});
  auto [ew, ec] = h.compute_of("e");
  CHECK(ew == b);
  CHECK(ec.early_nonce == 77);
  CHECK(ec.push_to.empty());
}

TEST_CASE("FastPaths.EarlyStartOff.ResultsStillPushed") {
  Harness h(Harness::config(without_early()));
  WorkerId a = h.worker("a");
  WorkerId b = h.worker("b");
  h.submit({Harness::early_spec("e", 77, b)});
  auto [ew, ec] = h.compute_of("e");
  CHECK(ew == a);
  CHECK(ec.early_nonce == 0);
  CHECK(ec.push_to == std::vector<std::string>{"client-data-id"});
  // The client's receipt completes it as usual.
  h.out = {};
  h.s.handle(h.client, ResultsReceived{{PushReceipt{ec.task, a, 8, {}}}}, h.now, h.out);
  CHECK(h.state_of("e") == TaskState::memory);
  CHECK(h.to_client<KeyDone>().empty());
}

// The scheduler's state machine: events that carry their data, and refused events (counted, logged, no effect).
#include <doctest/doctest.h>

#include <memory>
#include <set>

#include <spdlog/sinks/ringbuffer_sink.h>

#include "test_scheduler_harness.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::scheduler;
using dtask::test::Harness;

namespace {

// Captures what the state's logger says (it is the state's own logger, so nothing else writes here).
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> capture_log(SchedulerState& s) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  s.logger()->sinks().push_back(sink);
  s.logger()->set_level(spdlog::level::warn);
  return sink;
}

std::uint32_t slot_of_key(const Harness& h, const std::string& key) { return slot_of(h.s.find(key)->id); }

// A task no worker may run (pinned to a worker that does not exist): it stays queued.
TaskSpec stuck(const std::string& key) {
  auto t = Harness::spec(key, "inc");
  t.workers = {"nobody"};
  return t;
}

}  // namespace

TEST_CASE("StateMachine.Table.EventsAndWhereTheyLead") {
  using S = TaskState;
  using E = TaskEventKind;
  CHECK(target_of(E::wait_for_inputs) == S::waiting);
  CHECK(target_of(E::queue) == S::queued);
  CHECK(target_of(E::assign) == S::processing);
  CHECK(target_of(E::finish) == S::memory);
  CHECK(target_of(E::fail) == S::erred);
  CHECK(target_of(E::reschedule) == S::released);
  CHECK(target_of(E::drop_data) == S::released);
  CHECK(target_of(E::forget) == S::forgotten);
  const std::set<std::pair<S, E>> legal = {
      {S::released, E::wait_for_inputs}, {S::released, E::queue},      {S::released, E::assign},
      {S::released, E::fail},            {S::released, E::forget},     {S::waiting, E::queue},
      {S::waiting, E::assign},           {S::waiting, E::reschedule},  {S::waiting, E::fail},
      {S::waiting, E::forget},           {S::queued, E::assign},       {S::queued, E::reschedule},
      {S::queued, E::fail},              {S::queued, E::forget},       {S::processing, E::finish},
      {S::processing, E::fail},          {S::processing, E::reschedule}, {S::processing, E::forget},
      {S::memory, E::drop_data},         {S::memory, E::forget},       {S::erred, E::reschedule},
      {S::erred, E::forget},
  };
  for (std::size_t f = 0; f < kNumTaskStates; ++f) {
    for (std::size_t e = 0; e < kNumTaskEvents; ++e) {
      auto from = static_cast<S>(f);
      auto ev = static_cast<E>(e);
      CAPTURE(to_string(from));
      CAPTURE(to_string(ev));
      CHECK(is_legal(from, ev) == (legal.count({from, ev}) > 0));
    }
  }
}

TEST_CASE("StateMachine.Refused.CountedLoggedOncePerPairAndChangesNothing") {
  Harness h;  // no workers: a root task waits in the queue
  auto log = capture_log(h.s);
  h.submit({Harness::spec("x", "inc")});
  REQUIRE(h.state_of("x") == TaskState::queued);
  std::uint32_t slot = slot_of_key(h, "x");
  h.out = {};
  CHECK(h.s.refused_transitions() == 0);
  // queued -> memory twice, queued -> released (by the wrong event) once.
  CHECK_FALSE(h.s.transition(slot, TaskEvent::finish(WorkerId{0}, 8, nullptr), h.out).ok);
  CHECK_FALSE(h.s.transition(slot, TaskEvent::finish(WorkerId{0}, 8, nullptr), h.out).ok);
  CHECK_FALSE(h.s.transition(slot, TaskEvent::drop_data(), h.out).ok);
  // Nothing changed...
  CHECK(h.state_of("x") == TaskState::queued);
  CHECK(h.s.count(TaskState::queued) == 1);
  CHECK(h.s.count(TaskState::memory) == 0);
  CHECK(h.s.find("x")->who_has.empty());
  CHECK(h.out.empty());
  // ...every refusal is counted...
  CHECK(h.s.refused_transitions() == 3);
  CHECK(h.s.info()["counters"]["refused_transitions"].get<std::uint64_t>() == 3);
  // ...and each (from, to) pair is logged once.
  auto lines = log->last_formatted();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find("illegal transition queued -> memory (finish) for key x") != std::string::npos);
  CHECK(lines[1].find("illegal transition queued -> released (drop_data) for key x") != std::string::npos);
  // An event for a slot that never held a task is refused and counted too.
  CHECK_FALSE(h.s.transition(99999, TaskEvent::queue(), h.out).ok);
  CHECK(h.s.refused_transitions() == 4);
  CHECK(h.out.empty());
  // The task still runs normally afterwards.
  auto w = h.worker("0");
  auto [cw, c] = h.compute_of("x");
  CHECK(cw == w);
  h.done(w, c);
  CHECK(h.state_of("x") == TaskState::memory);
  CHECK(h.s.refused_transitions() == 4);
}

TEST_CASE("StateMachine.Event.AssignCarriesTheWorkerAndTheEarlyStart") {
  Harness h;
  auto w = h.worker("0");
  h.submit({stuck("x")});
  REQUIRE(h.state_of("x") == TaskState::queued);
  REQUIRE(h.computes().empty());
  std::uint32_t slot = slot_of_key(h, "x");
  CHECK(h.s.transition(slot, TaskEvent::assign(w, 42), h.out).ok);
  auto [cw, c] = h.compute_of("x");
  CHECK(cw == w);
  CHECK(c.early_nonce == 42);
  CHECK(h.s.find("x")->processing_on == w);
  CHECK(h.s.worker(w)->processing.contains(slot));
  // Refused from processing: neither the worker nor the nonce of the refused event is applied.
  auto other = h.worker("1");
  CHECK_FALSE(h.s.transition(slot, TaskEvent::assign(other, 7), h.out).ok);
  CHECK(h.computes().empty());
  CHECK(h.s.find("x")->processing_on == w);
  CHECK_FALSE(h.s.worker(other)->processing.contains(slot));
}

TEST_CASE("StateMachine.Event.FinishCarriesTheValueAndWhoReportedIt") {
  Harness h;
  auto w = h.worker("0");
  auto other = *h.s.add_client(RegisterClient{kProtocolVersion, "d", "other-data-id"}, "other-id", h.now, h.out);
  h.submit({Harness::spec("p", "inc")});
  h.s.handle(other, SubmitTasks{{Harness::spec("p", "inc")}}, h.now, h.out);  // wanted by both
  auto [pw, pc] = h.compute_of("p");
  REQUIRE(pw == w);
  h.out = {};
  Payload value = Codec<int>::encode(5);
  CHECK(h.s.transition(slot_of(pc.task), TaskEvent::finish(w, 16, &value, h.client), h.out).ok);
  const Task* t = h.s.find("p");
  CHECK(t->state == TaskState::memory);
  CHECK(t->nbytes == 16);
  CHECK(t->who_has.to_vector() == std::vector<WorkerId>{w});
  CHECK(h.s.worker(w)->has_what.contains(slot_of(pc.task)));
  CHECK_FALSE(h.s.worker(w)->processing.contains(slot_of(pc.task)));
  // The reporting client has the value: only the other one is told, with the value inline.
  std::vector<std::pair<ClientId, KeyDone>> dones;
  for (auto& [c, m] : h.out.to_clients) {
    if (auto* d = std::get_if<KeyDone>(&m)) dones.emplace_back(c, *d);
  }
  REQUIRE(dones.size() == 1);
  CHECK(dones[0].first == other);
  CHECK(dones[0].second.has_data);
  CHECK(decode<int>(dones[0].second.data) == 5);
  CHECK(dones[0].second.nbytes == 16);
}

TEST_CASE("StateMachine.Event.FailCarriesTheFailureOnlyWhenApplied") {
  Harness h;
  auto w = h.worker("0");
  h.submit({stuck("q"), Harness::spec("m", "inc")});
  auto [mw, mc] = h.compute_of("m");
  h.done(mw, mc);
  REQUIRE(h.state_of("m") == TaskState::memory);
  h.out = {};
  auto failure = std::make_shared<const Failure>(Failure{"the_func", "boom"});
  // Refused from memory: no failure stored, nobody told.
  CHECK_FALSE(h.s.transition(slot_of_key(h, "m"), TaskEvent::fail(failure, false), h.out).ok);
  CHECK(h.s.failure_of(*h.s.find("m")) == nullptr);
  CHECK(h.state_of("m") == TaskState::memory);
  CHECK(h.out.empty());
  // Applied from queued: stored, and the wanting client hears it as the event said.
  CHECK(h.s.transition(slot_of_key(h, "q"), TaskEvent::fail(failure, false), h.out).ok);
  const Failure* f = h.s.failure_of(*h.s.find("q"));
  REQUIRE(f != nullptr);
  CHECK(f->message == "boom");
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].key == "q");
  CHECK(errs[0].func == "the_func");
  CHECK(errs[0].message == "boom");
  // A cancel is a failure whose event says so: KeyCancelled, and a running task is released.
  h.submit({stuck("r")});
  h.out = {};
  std::uint32_t r = slot_of_key(h, "r");
  REQUIRE(h.s.transition(r, TaskEvent::assign(w), h.out).ok);
  auto [rw, rc] = h.compute_of("r");
  CHECK(h.s.transition(r, TaskEvent::fail(failure, true), h.out).ok);
  CHECK(h.to_client<KeyCancelled>().size() == 1);
  CHECK(h.released_on(w) == std::vector<TaskId>{rc.task});
  CHECK(h.s.find("r")->cancelled);
}

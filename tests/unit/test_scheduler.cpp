// Scheduler decisions and the task state machine, driven without sockets through SchedulerState.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include "test_scheduler_harness.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::scheduler;
using dtask::test::Harness;


TEST_CASE("StateMachine.Table.LegalAndIllegalPairs") {
  using S = TaskState;
  const std::set<std::pair<S, S>> legal = {
      {S::released, S::waiting},    {S::released, S::queued},    {S::released, S::processing},
      {S::released, S::erred},      {S::released, S::forgotten}, {S::waiting, S::queued},
      {S::waiting, S::processing},  {S::waiting, S::released},   {S::waiting, S::erred},
      {S::waiting, S::forgotten},   {S::queued, S::processing},  {S::queued, S::released},
      {S::queued, S::erred},        {S::queued, S::forgotten},   {S::processing, S::memory},
      {S::processing, S::erred},    {S::processing, S::released}, {S::processing, S::forgotten},
      {S::memory, S::released},     {S::memory, S::forgotten},   {S::erred, S::released},
      {S::erred, S::forgotten},
  };
  for (std::size_t f = 0; f < kNumTaskStates; ++f) {
    for (std::size_t t = 0; t < kNumTaskStates; ++t) {
      auto from = static_cast<S>(f), to = static_cast<S>(t);
      CAPTURE(to_string(from));
      CAPTURE(to_string(to));
      CHECK(is_legal(from, to) == (legal.count({from, to}) > 0));
    }
  }
}

TEST_CASE("StateMachine.Transition.IllegalIsRefusedAndChangesNothing") {
  Harness h;  // no workers: a root task waits in the queue
  h.submit({Harness::spec("x", "inc")});
  REQUIRE(h.state_of("x") == TaskState::queued);
  std::uint32_t slot = slot_of(h.s.find("x")->id);
  h.out = {};
  // drop_data leads to released, a state queued may go to, but only by another event (reschedule).
  for (const auto& ev : {TaskEvent::finish(WorkerId{0}, 8, nullptr), TaskEvent::wait_for_inputs(), TaskEvent::queue(),
                         TaskEvent::drop_data()}) {
    CAPTURE(to_string(ev.kind));
    auto r = h.s.transition(slot, ev, h.out);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("illegal transition queued") != std::string::npos);
    CHECK(h.state_of("x") == TaskState::queued);
  }
  CHECK(h.s.count(TaskState::queued) == 1);
  CHECK(h.out.empty());
}

TEST_CASE("Scheduler.Chain.DependentsFollowTheirInputs") {
  Harness h;
  auto a = h.worker("0");
  auto b = h.worker("1");
  h.submit({Harness::spec("x", "inc", {}, false), Harness::spec("y", "dec", {"x"}, false),
            Harness::spec("z", "add", {"x", "y"})});
  CHECK(h.state_of("y") == TaskState::waiting);
  auto [wx, cx] = h.compute_of("x");
  CHECK((wx == a || wx == b));
  h.done(wx, cx, 1000);
  auto [wy, cy] = h.compute_of("y");
  CHECK(wy == wx);  // where its input is
  REQUIRE(cy.deps.size() == 1);
  CHECK(cy.deps[0].holders == std::vector<WorkerId>{wx});
  h.done(wy, cy);
  auto [wz, cz] = h.compute_of("z");
  CHECK(wz == wx);
  CHECK(cz.args.size() == 2);
  CHECK(h.to_client<KeyDone>().empty());
  h.done(wz, cz);
  auto dones = h.to_client<KeyDone>();
  REQUIRE(dones.size() == 1);  // only the wanted output is reported
  CHECK(dones[0].key == "z");
  // The intermediates are dropped from the worker once z exists.
  auto rel = h.released_on(wx);
  CHECK(std::count(rel.begin(), rel.end(), cx.task) == 1);
  CHECK(std::count(rel.begin(), rel.end(), cy.task) == 1);
  // Releasing the output forgets the whole graph.
  h.s.handle(h.client, ReleaseKeys{{"z"}}, h.now, h.out);
  CHECK(h.s.n_tasks() == 0);
}

TEST_CASE("Scheduler.Queue.RootTasksSpreadAndHonourPriority") {
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 1;
  cfg.saturation_extra = 0;
  Harness h(cfg);
  auto w = h.worker("0");
  auto lo = Harness::spec("lo", "inc");
  auto hi = Harness::spec("hi", "inc");
  hi.priority = 10;
  auto mid = Harness::spec("mid", "inc");
  mid.priority = 5;
  h.submit({lo, hi, mid});
  auto first = h.computes();
  REQUIRE(first.size() == 1);  // one slot
  CHECK(first[0].second.key == "hi");
  h.done(w, first[0].second);
  auto second = h.computes();
  REQUIRE(second.size() == 1);
  CHECK(second[0].second.key == "mid");
  // A second worker gets queued work as soon as it joins.
  auto w2 = h.worker("1");
  auto third = h.computes();
  REQUIRE(third.size() == 1);
  CHECK(third[0].first == w2);
  CHECK(third[0].second.key == "lo");
}

TEST_CASE("Scheduler.Queue.BigResultsStopDealingAhead") {
  // Small results: a worker is dealt nthreads * saturation + extra roots at once. Once its
  // results are big, it gets only nthreads * saturation, so loaders do not run far ahead.
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 2;
  cfg.saturation_extra = 10;
  cfg.saturation_extra_max_result_bytes = 1000;
  Harness h(cfg);
  auto w = h.worker("0");
  h.submit(Harness::roots("r", 100, "inc"));
  auto first = h.computes();
  REQUIRE(first.size() == 12);  // 1 thread * 2 + 10
  // Small results keep it topped up to 12.
  h.done(w, first[0].second, 8);
  auto refill = h.computes();
  CHECK(refill.size() == 1);
  // A big result: no more roots until fewer than 2 are in flight.
  h.done(w, first[1].second, 1 << 20);
  CHECK(h.computes().empty());
  for (std::size_t i = 2; i < first.size(); ++i) h.done(w, first[i].second, 1 << 20);
  h.done(w, refill[0].second, 1 << 20);
  auto after = h.computes();
  CHECK(after.size() == 2);  // back to nthreads * saturation
  // Small results again: the average decays and the extra slots come back.
  std::size_t in_flight = after.size();
  for (int round = 0; round < 60 && in_flight < 12; ++round) {
    auto batch = std::move(after);
    for (auto& c : batch) h.done(w, c.second, 8);
    after = h.computes();
    in_flight = after.size();
  }
  CHECK(in_flight == 12);
}

TEST_CASE("Scheduler.Restrictions.WorkersPinAndResourcesMatch") {
  Harness h;
  h.worker("0");
  h.worker("1");
  auto gpu = h.worker("2", 1, {{"GPU", 2}});
  auto pinned = Harness::spec("p", "inc");
  pinned.workers = {"2"};
  auto needs_gpu = Harness::spec("g", "inc");
  needs_gpu.resources = {{"GPU", 1}};
  auto elsewhere = Harness::spec("e", "inc");
  elsewhere.workers = {"nonexistent"};
  elsewhere.allow_other_workers = true;
  h.submit({pinned, needs_gpu, elsewhere});
  auto cs = h.computes();
  std::map<std::string, WorkerId> where;
  for (auto& [w, c] : cs) where[c.key] = w;
  CHECK(where.at("p") == gpu);
  CHECK(where.at("g") == gpu);
  CHECK(where.count("e") == 1);
}

TEST_CASE("Scheduler.Restrictions.UnsatisfiableIsAClearErrorNotAHang") {
  SchedulerConfig cfg = Harness::config();
  cfg.no_worker_timeout_ms = 500;
  Harness h(cfg);
  h.worker("0");
  auto t = Harness::spec("t", "inc");
  t.workers = {"7"};
  h.submit({t});
  CHECK(h.state_of("t") == TaskState::queued);
  h.now += 100;
  h.s.tick(h.now, h.out);
  CHECK(h.to_client<KeyErred>().empty());
  h.now += 1000;
  h.s.handle(h.client, Heartbeat{}, h.now, h.out);
  h.s.handle(WorkerId{0}, Heartbeat{}, h.now, h.out);
  h.s.tick(h.now, h.out);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].message.find("no worker can run it (workers=[7]") != std::string::npos);
}

TEST_CASE("Scheduler.Failure.RetriesThenPropagatesToDependents") {
  Harness h;
  auto w = h.worker("0");
  auto x = Harness::spec("x", "fail_if_negative", {}, false);
  x.retries = 1;
  h.submit({x, Harness::spec("y", "inc", {"x"})});
  auto [w1, c1] = h.compute_of("x");
  h.s.handle(w1, TaskFailed{c1.task, "negative input -1"}, h.now, h.out);
  auto [w2, c2] = h.compute_of("x");  // retried
  CHECK(w2 == w);
  h.s.handle(w2, TaskFailed{c2.task, "negative input -1"}, h.now, h.out);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].key == "y");
  CHECK(errs[0].func == "fail_if_negative");
  // Each attempt's message (test_decoders.cpp: Decoders.Retries.TheFinalErrorListsEachAttempt).
  CHECK(errs[0].message == "attempt 1 (worker '0'): negative input -1\nattempt 2 (worker '0'): negative input -1");
  CHECK(h.state_of("y") == TaskState::erred);
}

TEST_CASE("Scheduler.WorkerDeath.RunningWorkMovesAndLostResultsAreRecomputed") {
  Harness h;
  auto a = h.worker("0");
  auto b = h.worker("1");
  h.submit({Harness::spec("x", "inc", {}, false), Harness::spec("y", "inc", {"x"})});
  auto [wx, cx] = h.compute_of("x");
  h.done(wx, cx);
  auto [wy, cy] = h.compute_of("y");
  REQUIRE(wy == wx);
  WorkerId survivor = wx == a ? b : a;
  h.s.remove_worker(wx, WorkerLoss::died("killed by signal 9 (SIGKILL)", {}), h.out);
  // x's only copy died with the worker: it runs again on the survivor, then y follows it.
  auto [wx2, cx2] = h.compute_of("x");
  CHECK(wx2 == survivor);
  CHECK(h.state_of("y") == TaskState::waiting);
  h.done(wx2, cx2);
  auto [wy2, cy2] = h.compute_of("y");
  CHECK(wy2 == survivor);
  h.done(wy2, cy2);
  auto dones = h.to_client<KeyDone>();
  REQUIRE(dones.size() == 1);
  CHECK(dones[0].key == "y");
}

TEST_CASE("Scheduler.Heartbeat.SilentWorkerIsDeclaredDead") {
  SchedulerConfig cfg = Harness::config();
  cfg.worker_timeout_ms = 1000;
  Harness h(cfg);
  auto w = h.worker("0");
  h.now += 500;
  CHECK(h.s.tick(h.now, h.out).dead_workers.empty());
  h.now += 2000;
  h.s.handle(h.client, Heartbeat{}, h.now, h.out);
  auto r = h.s.tick(h.now, h.out);
  REQUIRE(r.dead_workers.size() == 1);
  CHECK(r.dead_workers[0] == w);
  CHECK(h.s.alive_workers().empty());
  // After a stall of the scheduler itself, nobody is blamed.
  auto w2 = h.worker("1");
  h.now += 10000;
  h.s.forgive_silence(h.now);
  CHECK(h.s.tick(h.now, h.out).dead_workers.empty());
  CHECK(h.s.alive_workers() == std::vector<WorkerId>{w2});
}

TEST_CASE("Scheduler.Steal.4workers.IdleWorkersTakeWaitingWork") {
  SchedulerConfig cfg = Harness::config();
  cfg.saturation = 1;
  cfg.saturation_extra = 20;
  Harness h(cfg);
  auto busy = h.worker("0");
  h.submit(Harness::roots("t", 12, "slow_inc"));
  CHECK(h.computes().size() == 12);  // all on the only worker
  std::vector<WorkerId> idle = {h.worker("1"), h.worker("2"), h.worker("3")};
  h.s.tick(h.now, h.out);
  std::vector<TaskId> requested;
  for (auto& [w, m] : h.out.to_workers) {
    if (auto* sr = std::get_if<StealRequest>(&m)) {
      CHECK(w == busy);
      requested.push_back(sr->task);
    }
  }
  REQUIRE(requested.size() == 3);  // one per idle thread
  h.out = {};
  // Two are given up; the third had started on the busy worker, which refuses.
  h.s.handle(busy, StealReply{requested[0], true}, h.now, h.out);
  h.s.handle(busy, StealReply{requested[1], true}, h.now, h.out);
  h.s.handle(busy, StealReply{requested[2], false}, h.now, h.out);
  auto moved = h.computes();
  REQUIRE(moved.size() == 2);
  std::set<WorkerId> thieves;
  for (auto& [w, c] : moved) {
    thieves.insert(w);
    CHECK(w != busy);
    CHECK(h.s.tasks().lookup(c.task)->processing_on == w);
  }
  CHECK(thieves.size() == 2);
  // A refused steal leaves the task where it was: still running on the busy worker, no longer
  // being stolen, and the would-be thief is idle again...
  const Task* kept = h.s.tasks().lookup(requested[2]);
  REQUIRE(kept != nullptr);
  CHECK(kept->state == TaskState::processing);
  CHECK(kept->processing_on == busy);
  CHECK_FALSE(kept->steal_pending);
  CHECK(h.s.worker(busy)->processing.size() == 10);
  WorkerId still_idle{};
  for (auto w : idle) {
    if (!thieves.count(w)) still_idle = w;
  }
  CHECK(h.s.worker(still_idle)->processing.size() == 0);
  CHECK(h.s.worker(still_idle)->stealing_in == 0);
  CHECK(h.released_on(busy).empty());
  // ...so the next tick asks the busy worker again, for that thief only.
  h.out = {};
  h.s.tick(h.now, h.out);
  std::vector<TaskId> again;
  for (auto& [w, m] : h.out.to_workers) {
    if (auto* sr = std::get_if<StealRequest>(&m)) {
      CHECK(w == busy);
      again.push_back(sr->task);
    }
  }
  CHECK(again.size() == 1);
  CHECK(h.s.worker(still_idle)->stealing_in == 1);
}

TEST_CASE("Scheduler.Submit.UnknownDependencyAndCancel") {
  Harness h;
  h.worker("0");
  h.submit({Harness::spec("orphan", "inc", {"never-submitted"})});
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].message.find("unknown key 'never-submitted'") != std::string::npos);

  h.submit({Harness::spec("a", "slow_inc", {}, false), Harness::spec("b", "inc", {"a"})});
  h.s.handle(h.client, CancelKeys{{"a"}}, h.now, h.out);
  auto cancelled = h.to_client<KeyCancelled>();
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].key == "b");  // the wanted dependent hears of it
  CHECK(h.state_of("b") == TaskState::erred);
}

TEST_CASE("Scheduler.Push.WaitingClientNamedAndStillToldByKeyDone") {
  Harness h;
  WorkerId w = h.worker("a");
  auto pushed = Harness::spec("p", "inc");
  pushed.push_result = true;
  h.submit({pushed, Harness::spec("q", "inc")});
  std::map<std::string, ComputeTask> c;
  for (auto& [_, m] : h.computes()) c[m.key] = m;
  REQUIRE(c.size() == 2);
  CHECK(c["p"].push_to == std::vector<std::string>{"client-data-id"});
  CHECK(c["q"].push_to.empty());

  // The worker's TaskDone came before the client's receipt: KeyDone still goes (a pushed copy
  // may have been lost), with the value.
  h.out = {};
  Payload small = Codec<int>::encode(2);
  h.s.handle(w, TaskDone{c["p"].task, small.nbytes(), true, small}, h.now, h.out);
  auto done = h.to_client<KeyDone>();
  REQUIRE(done.size() == 1);
  CHECK(done[0].key == "p");
  CHECK(done[0].has_data);
  // ...and a receipt arriving after that changes nothing.
  h.out = {};
  h.s.handle(h.client, ResultsReceived{{PushReceipt{c["p"].task, w, small.nbytes(), {}}}}, h.now, h.out);
  CHECK(h.out.empty());
  CHECK(h.state_of("p") == TaskState::memory);
}

TEST_CASE("Scheduler.Push.ClientReceiptCompletesTheTask") {
  Harness h;
  WorkerId w = h.worker("a", 2);
  WorkerId other = h.worker("b");
  auto p = Harness::spec("p", "inc");
  p.push_result = true;
  auto q = Harness::spec("q", "inc");
  q.push_result = true;
  h.submit({p, q});
  std::map<std::string, std::pair<WorkerId, ComputeTask>> c;
  for (auto& wc : h.computes()) c[wc.second.key] = wc;
  REQUIRE(c.size() == 2);

  // The client reports p (run on its worker): done, no KeyDone for it at all, slot freed.
  h.out = {};
  auto [pw, pc] = c["p"];
  h.s.handle(h.client, ResultsReceived{{PushReceipt{pc.task, pw, 8, {}}}}, h.now, h.out);
  CHECK(h.state_of("p") == TaskState::memory);
  CHECK(h.to_client<KeyDone>().empty());
  const Task* pt = h.s.find("p");
  REQUIRE(pt != nullptr);
  CHECK(pt->who_has.contains(pw));

  // The worker's own TaskDone comes later: nothing to do, and the worker keeps its copy.
  h.out = {};
  Payload small = Codec<int>::encode(2);
  h.s.handle(pw, TaskDone{pc.task, small.nbytes(), true, small}, h.now, h.out);
  CHECK(h.released_on(pw).empty());
  CHECK(h.to_client<KeyDone>().empty());

  // A receipt naming another worker than the one running q is not believed.
  auto [qw, qc] = c["q"];
  WorkerId wrong = qw == w ? other : w;
  h.out = {};
  h.s.handle(h.client, ResultsReceived{{PushReceipt{qc.task, wrong, 8, {}}}}, h.now, h.out);
  CHECK(h.state_of("q") == TaskState::processing);
  // ...and its worker's TaskDone then completes it as usual.
  h.s.handle(qw, TaskDone{qc.task, small.nbytes(), true, small}, h.now, h.out);
  CHECK(h.state_of("q") == TaskState::memory);
}

TEST_CASE("Scheduler.Push.ReceiptOnlyForWhatWasPushedToThatClient") {
  Harness h;
  WorkerId w = h.worker("a", 2);
  auto p = Harness::spec("p", "inc");
  p.push_result = true;
  h.submit({Harness::spec("n", "inc"), p});  // n is not pushed
  std::map<std::string, std::pair<WorkerId, ComputeTask>> c;
  for (auto& wc : h.computes()) c[wc.second.key] = wc;
  REQUIRE(c.size() == 2);
  CHECK(c["n"].first == w);
  auto stranger = *h.s.add_client(RegisterClient{kProtocolVersion, "s", "stranger-data-id"}, "stranger", h.now, h.out);
  h.out = {};
  // The wanting client, for a task not pushed to it: ignored.
  h.s.handle(h.client, ResultsReceived{{PushReceipt{c["n"].second.task, w, 8, {}}}}, h.now, h.out);
  CHECK(h.state_of("n") == TaskState::processing);
  // Another client, for a task pushed to the one that wants it: ignored.
  h.s.handle(stranger, ResultsReceived{{PushReceipt{c["p"].second.task, w, 8, {}}}}, h.now, h.out);
  CHECK(h.state_of("p") == TaskState::processing);
  CHECK(h.out.empty());
  // The worker's TaskDone still completes n as usual.
  h.done(w, c["n"].second);
  CHECK(h.state_of("n") == TaskState::memory);
  CHECK(h.to_client<KeyDone>().size() == 1);
}

TEST_CASE("Scheduler.Push.WorkerToldWhenOthersWaitForTheResult") {
  // A pushed output that another task needs: the worker must not hold its TaskDone back (each
  // level of a small all-wanted graph would wait kPushedDoneDelayMs).
  Harness h;
  h.worker("a");
  auto a = Harness::spec("a", "inc");
  a.push_result = true;
  auto b = Harness::spec("b", "inc", {"a"});
  b.push_result = true;
  h.submit({a, b});
  auto [aw, ac] = h.compute_of("a");
  CHECK(ac.push_to == std::vector<std::string>{"client-data-id"});
  CHECK(ac.dependents_waiting);
  h.done(aw, ac);
  auto [bw, bc] = h.compute_of("b");
  CHECK(bc.push_to == std::vector<std::string>{"client-data-id"});
  CHECK_FALSE(bc.dependents_waiting);
}

// A task the client started early on a worker (StartTask) is placed there when that worker has
// a free thread, and the ComputeTask names the start so the worker adopts its result.
TaskSpec early_spec(const std::string& key, std::uint64_t nonce, WorkerId on) {
  return Harness::early_spec(key, nonce, on);
}

TEST_CASE("Scheduler.Early.PlacedWhereStarted") {
  Harness h;
  WorkerId a = h.worker("a");
  WorkerId b = h.worker("b");
  // Without the early start the first worker with room takes it (a)...
  h.submit({Harness::spec("plain", "inc")});
  auto [pw, pc] = h.compute_of("plain");
  CHECK(pw == a);
  CHECK(pc.early_nonce == 0);
  h.done(pw, pc);
  // ...with it, the worker it started on (b), and the nonce goes along.
  h.submit({early_spec("e", 77, b)});
  auto [ew, ec] = h.compute_of("e");
  CHECK(ew == b);
  CHECK(ec.early_nonce == 77);
  CHECK(h.s.info()["placed_where_started_early"].get<std::uint64_t>() == 1);
}

TEST_CASE("Scheduler.Early.BusyOrUnknownWorkerNotChosen") {
  Harness h;
  WorkerId a = h.worker("a");
  h.worker("b");
  h.worker("c");
  h.submit({Harness::spec("long", "inc")});
  REQUIRE(h.compute_of("long").first == a);
  // `a` has no free thread, and worker 99 does not exist: each task goes wherever the
  // scheduler would put it anyway (a too, when it deals ahead), without a nonce: an early
  // result is never used there.
  h.submit({early_spec("e", 5, a)});
  h.submit({early_spec("f", 6, WorkerId{99})});
  std::map<std::string, std::pair<WorkerId, ComputeTask>> c;
  for (auto& wc : h.computes()) c[wc.second.key] = wc;
  REQUIRE(c.size() == 2);
  auto ec = c["e"].second;
  auto fc = c["f"].second;
  CHECK(ec.early_nonce == 0);
  CHECK(fc.early_nonce == 0);
  CHECK(h.s.info()["placed_where_started_early"].get<std::uint64_t>() == 0);
}

TEST_CASE("Scheduler.Early.ReceiptByKey") {
  Harness h;
  h.worker("a");
  WorkerId b = h.worker("b");
  h.submit({early_spec("e", 9, b), early_spec("g", 10, b)});
  std::map<std::string, std::pair<WorkerId, ComputeTask>> c;
  for (auto& wc : h.computes()) c[wc.second.key] = wc;
  REQUIRE(c.size() == 2);
  auto [ew, ec] = c["e"];
  REQUIRE(ew == b);
  // The client's receipt names the key (the worker knew no task id): done, no KeyDone.
  h.out = {};
  h.s.handle(h.client, ResultsReceived{{PushReceipt{TaskId{12345}, b, 8, "e"}}}, h.now, h.out);
  CHECK(h.state_of("e") == TaskState::memory);
  CHECK(h.to_client<KeyDone>().empty());
  // g found b busy and went elsewhere: a receipt saying b has it is not believed.
  auto [gw, gc] = c["g"];
  REQUIRE(gw != b);
  CHECK(gc.early_nonce == 0);
  h.s.handle(h.client, ResultsReceived{{PushReceipt{TaskId{}, b, 8, "g"}}}, h.now, h.out);
  CHECK(h.state_of("g") == TaskState::processing);
}

TEST_CASE("Scheduler.Registration.RefusesDuplicatesAndOtherVersions") {
  Harness h;
  h.worker("0");
  RegisterWorker dup;
  dup.name = "0";
  std::string why;
  CHECK_FALSE(h.s.add_worker(dup, "other", h.now, h.out, &why).has_value());
  CHECK(why.find("already registered") != std::string::npos);
  RegisterWorker old;
  old.name = "9";
  old.version = kProtocolVersion + 1;
  CHECK_FALSE(h.s.add_worker(old, "old", h.now, h.out, &why).has_value());
  CHECK(why.find("protocol version mismatch") != std::string::npos);
}

TEST_CASE("Scheduler.Release.DroppedFutureIsForgottenWhileQueued") {
  Harness h;  // no workers
  h.submit({Harness::spec("q", "inc")});
  CHECK(h.s.n_tasks() == 1);
  h.s.handle(h.client, ReleaseKeys{{"q"}}, h.now, h.out);
  CHECK(h.s.n_tasks() == 0);
  h.worker("0");
  CHECK(h.computes().empty());  // the stale queue entry is skipped
}

TEST_CASE("Scheduler.Storage.ArgumentsReachTheWorkerAsSubmitted") {
  Harness h;
  h.worker("0");
  auto x = Harness::spec("x", "inc", {}, false);
  TaskSpec bulk = Harness::spec("b", "sum", {}, false);
  bulk.args[0].data = Codec<std::vector<double>>::encode(std::vector<double>{1, 2, 3});
  REQUIRE(bulk.args[0].data.frames.size() == 1);  // kept beside the arena, frames and all
  TaskSpec y;
  y.key = "y";
  y.func = "mix";
  ClientArg v;
  v.data = Codec<int>::encode(70000);
  y.args.push_back(v);
  for (std::vector<std::string> refs : {std::vector<std::string>{"x"}, {"x", "b"}, {"x"}}) {
    ClientArg a;
    a.kind = refs.size() == 1 ? ClientArg::dep : ClientArg::dep_list;
    a.refs = refs;
    y.args.push_back(a);
  }
  std::string long_key(20000, 'k');  // bigger than a quarter arena chunk: a chunk of its own
  h.submit({x, bulk, y, Harness::spec(long_key, "inc")});
  auto cs = h.computes();
  REQUIRE(cs.size() == 3);
  std::map<std::string, std::pair<WorkerId, ComputeTask>> by_key;
  for (auto& c : cs) by_key[c.second.key] = c;
  REQUIRE(by_key.count(long_key) == 1);
  CHECK(h.s.find(long_key) != nullptr);
  auto& [wb, cb] = by_key.at("b");
  REQUIRE(cb.args.size() == 1);
  CHECK(decode<std::vector<double>>(cb.args[0].data) == std::vector<double>{1, 2, 3});
  auto& [wx, cx] = by_key.at("x");
  CHECK(decode<int>(cx.args.at(0).data) == 1);
  h.done(wx, cx);
  h.done(wb, cb);
  auto [wy, cy] = h.compute_of("y");
  REQUIRE(cy.args.size() == 4);
  CHECK(cy.args[0].kind == TaskArg::value);
  CHECK(decode<int>(cy.args[0].data) == 70000);
  CHECK(cy.args[1].refs == std::vector<TaskId>{cx.task});
  CHECK(cy.args[2].kind == TaskArg::dep_list);
  CHECK(cy.args[2].refs == std::vector<TaskId>{cx.task, cb.task});
  CHECK(cy.args[3].refs == std::vector<TaskId>{cx.task});
  REQUIRE(cy.deps.size() == 2);  // each input once
  CHECK(cy.deps[0].task == cx.task);
  CHECK(cy.deps[1].task == cb.task);
  // A lost result is recomputed from the same stored arguments.
  h.s.remove_worker(wy, WorkerLoss::died("killed by signal 9 (SIGKILL)", {}), h.out);
  auto w2 = h.worker("1");
  auto [wb2, cb2] = h.compute_of("b");
  CHECK(wb2 == w2);
  CHECK(decode<std::vector<double>>(cb2.args.at(0).data) == std::vector<double>{1, 2, 3});
}

TEST_CASE("Scheduler.Storage.KeyIndexAndArenaSurviveChurn") {
  Harness h;  // no workers: every task stays queued until released
  const int n = 5000;
  auto key = [](int i) { return "key-" + std::to_string(i * 7919 % 100003); };
  std::vector<TaskSpec> specs;
  for (int i = 0; i < n; ++i) specs.push_back(Harness::spec(key(i), "inc"));
  h.submit(specs);
  REQUIRE(h.s.n_tasks() == static_cast<std::size_t>(n));
  // Release in a scattered order, so deletions land in the middle of probe runs.
  std::vector<std::string> gone;
  for (int i = 0; i < n; ++i) {
    if (i % 3 != 0) gone.push_back(key(i));
  }
  std::reverse(gone.begin(), gone.end());
  h.s.handle(h.client, ReleaseKeys{gone}, h.now, h.out);
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK((h.s.find(key(i)) != nullptr) == (i % 3 == 0));
  }
  // Freed slots are reused under new keys, and the old keys stay unknown.
  std::vector<TaskSpec> again;
  for (int i = 0; i < n; i += 3) again.push_back(Harness::spec("new-" + std::to_string(i), "inc"));
  h.submit(again);
  for (int i = 0; i < n; i += 3) {
    const Task* t = h.s.find("new-" + std::to_string(i));
    REQUIRE(t != nullptr);
    CHECK(h.s.key_of(*t) == "new-" + std::to_string(i));
  }
  CHECK(h.s.find(key(1)) == nullptr);
  // Forgetting everything gives the arena back (at most the chunk being filled stays).
  std::vector<std::string> all;
  for (int i = 0; i < n; i += 3) {
    all.push_back(key(i));
    all.push_back("new-" + std::to_string(i));
  }
  h.s.handle(h.client, ReleaseKeys{all}, h.now, h.out);
  CHECK(h.s.n_tasks() == 0);
  CHECK(h.s.arena_chunks() <= 1);
}

TEST_CASE("Scheduler.SlotSet.MatchesAReferenceSetUnderChurn") {
  // Random inserts and erases (clustered slots force long probe runs and wrap-around), checked
  // against std::set after every step: membership, size and the iterated contents.
  dtask::scheduler::SlotSet s;
  std::set<std::uint32_t> ref;
  std::uint64_t x = 88172645463325252ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int step = 0; step < 200000; ++step) {
    auto slot = static_cast<std::uint32_t>(next() % (step < 100000 ? 512 : 70000));
    if (next() % 3 == 0) {
      CHECK(s.erase(slot) == (ref.erase(slot) == 1));
    } else {
      CHECK(s.insert(slot) == ref.insert(slot).second);
    }
    if (step % 997 == 0) {
      REQUIRE(s.size() == ref.size());
      std::set<std::uint32_t> seen(s.begin(), s.end());
      REQUIRE(seen == ref);
      for (std::uint32_t probe = 0; probe < 600; ++probe) REQUIRE(s.contains(probe) == (ref.count(probe) == 1));
    }
  }
  for (auto v : std::vector<std::uint32_t>(ref.begin(), ref.end())) CHECK(s.erase(v));
  CHECK(s.empty());
  CHECK(s.begin() == s.end());
}

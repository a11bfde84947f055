// The scheduler's side of dying workers: which tasks a death suspects, and KilledWorker after allowed_failures.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_scheduler_harness.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::scheduler;
using dtask::test::Harness;

namespace {

const char* kSegv = "killed by signal 11 (SIGSEGV)";

SchedulerConfig allowing(std::uint32_t allowed_failures) {
  SchedulerConfig cfg = Harness::config();
  cfg.allowed_failures = allowed_failures;
  return cfg;
}

// The supervisor restarted worker `name`: its new incarnation registers under the same name with
// the report on the one before (a new routing id, as a new process has). Returns the new id.
WorkerId restart(Harness& h, const std::string& name, std::vector<TaskId> running, const std::string& reason = kSegv,
                 std::uint32_t nthreads = 1) {
  static int incarnation = 0;
  RegisterWorker r;
  r.name = name;
  r.host = "host-" + name;
  r.address = "tcp://127.0.0.1:" + std::to_string(6000 + ++incarnation);
  r.nthreads = nthreads;
  r.previous.died = true;
  r.previous.reason = reason;
  r.previous.running = std::move(running);
  std::string why;
  auto id = h.s.add_worker(r, "wid-" + name + "-" + std::to_string(incarnation), h.now, h.out, &why);
  REQUIRE_MESSAGE(id.has_value(), why);
  return *id;
}

// Every ComputeTask sent so far, by key (the latest one for a key wins).
std::map<std::string, std::pair<WorkerId, ComputeTask>> computes_by_key(Harness& h) {
  std::map<std::string, std::pair<WorkerId, ComputeTask>> r;
  for (auto& c : h.computes()) r[c.second.key] = c;
  return r;
}

const KeyErred* erred_for(const std::vector<KeyErred>& errs, const std::string& key) {
  for (const auto& e : errs) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::uint64_t counter(const Harness& h, const char* name) { return h.s.info()["counters"][name].get<std::uint64_t>(); }

}  // namespace

TEST_CASE("SchedulerFailures.DeathReport.OnlyTheRunningTasksAreSuspected") {
  Harness h(allowing(1));  // one death is enough: a suspected task errs at once, so it shows
  auto a = h.worker("a", 2);
  h.submit({Harness::spec("x", "inc"), Harness::spec("y", "inc")});
  auto c = computes_by_key(h);
  REQUIRE(c.size() == 2);
  REQUIRE(c["x"].first == a);
  REQUIRE(c["y"].first == a);
  // x was running when the process died; y was only assigned there (not started).
  auto a2 = restart(h, "a", {c["x"].second.task}, kSegv, 2);
  CHECK_FALSE(h.s.worker(a)->alive);
  CHECK(h.s.worker(a2)->alive);
  CHECK(h.state_of("x") == TaskState::erred);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].key == "x");
  CHECK(errs[0].func == "inc");
  CHECK(errs[0].message.rfind("KilledWorker: task 'x' was running on 1 worker that died; the last, worker 'a' on "
                              "host host-a: killed by signal 11 (SIGSEGV)",
                              0) == 0);
  // y runs again, on the new incarnation (the only worker), with no death against it.
  auto again = computes_by_key(h);
  REQUIRE(again.count("y") == 1);
  CHECK(again["y"].first == a2);
  CHECK(again.count("x") == 0);
  h.done(a2, again["y"].second);
  CHECK(h.state_of("y") == TaskState::memory);
  CHECK(counter(h, "workers_died") == 1);
  CHECK(counter(h, "tasks_killed") == 1);
}

TEST_CASE("SchedulerFailures.DeathReport.ATaskNoLongerThereIsNotSuspected") {
  Harness h(allowing(1));
  auto a = h.worker("a");
  auto b = h.worker("b");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  WorkerId other = wx == a ? b : a;
  // The report names x, but x was not processing on the worker that died (a stale id).
  restart(h, h.s.worker(other)->info.name, {cx.task});
  CHECK(h.state_of("x") == TaskState::processing);
  CHECK(h.to_client<KeyErred>().empty());
  CHECK(counter(h, "workers_died") == 1);
  CHECK(counter(h, "tasks_killed") == 0);
}

TEST_CASE("SchedulerFailures.HeartbeatTimeout.EveryProcessingTaskIsSuspected") {
  SchedulerConfig cfg = allowing(1);
  cfg.worker_timeout_ms = 1000;
  Harness h(cfg);
  h.worker("a", 2);
  h.submit({Harness::spec("x", "inc"), Harness::spec("y", "inc")});
  REQUIRE(h.computes().size() == 2);
  // No report: nobody knows which had started, so both are suspected (Dask's rule).
  auto dead = h.s.tick(h.now + 2000, h.out);
  REQUIRE(dead.dead_workers.size() == 1);
  CHECK(h.state_of("x") == TaskState::erred);
  CHECK(h.state_of("y") == TaskState::erred);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 2);
  for (const auto& e : errs) {
    CHECK(e.message.find("KilledWorker: task '" + e.key + "' was running on 1 worker that died") == 0);
    CHECK(e.message.find("worker 'a' on host host-a: stopped responding (silent for more than 1000 ms)") !=
          std::string::npos);
  }
  CHECK(counter(h, "workers_died") == 1);
  CHECK(counter(h, "tasks_killed") == 2);
}

TEST_CASE("SchedulerFailures.HeartbeatTimeout.ALaterDeathReportCountsNothingTwice") {
  SchedulerConfig cfg = allowing(2);
  cfg.worker_timeout_ms = 1000;
  Harness h(cfg);
  h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  h.now += 2000;
  h.s.tick(h.now, h.out);  // death 1 of x: the timeout
  CHECK(h.state_of("x") == TaskState::queued);  // no worker left
  // The supervisor's report arrives after the timeout removed the old record: it names x, but
  // that death was already counted.
  auto a2 = restart(h, "a", {cx.task});
  auto [wx2, cx2] = h.compute_of("x");
  CHECK(wx2 == a2);
  CHECK(h.state_of("x") == TaskState::processing);
  CHECK(counter(h, "workers_died") == 1);
  // The second real death is the last allowed one.
  restart(h, "a", {cx2.task});
  CHECK(h.state_of("x") == TaskState::erred);
  CHECK(counter(h, "workers_died") == 2);
}

TEST_CASE("SchedulerFailures.KilledWorker.ThirdDeathFailsTheTaskAndItsDependentsOnly") {
  Harness h;  // default allowed_failures: 3
  h.worker("0");
  h.worker("1");
  h.worker("2");
  auto crash = Harness::spec("crash", "always_crash");
  crash.retries = 5;  // retries are for exceptions: deaths do not use them up
  h.submit({crash, Harness::spec("dep", "inc", {"crash"}), Harness::spec("after", "inc", {"dep"}, false),
            Harness::spec("o0", "inc"), Harness::spec("o1", "inc"), Harness::spec("o2", "inc"),
            Harness::spec("o3", "inc", {"o0"})});
  std::map<std::string, std::pair<WorkerId, ComputeTask>> running = computes_by_key(h);
  std::vector<std::string> killed_on;
  for (int death = 1; death <= 3; ++death) {
    REQUIRE(running.count("crash") == 1);
    auto [w, c] = running["crash"];
    std::string name = h.s.worker(w)->info.name;
    killed_on.push_back(name);
    running.erase("crash");
    // The worker also ran o-tasks that were not running when it died: they are only rescheduled.
    for (auto it = running.begin(); it != running.end();) {
      it = it->second.first == w ? running.erase(it) : std::next(it);
    }
    restart(h, name, {c.task});
    for (auto& [k, v] : computes_by_key(h)) running[k] = v;
    if (death < 3) {
      CHECK(h.state_of("crash") == TaskState::processing);
      CHECK(h.to_client<KeyErred>().empty());
    }
  }
  CHECK(running.count("crash") == 0);
  CHECK(h.state_of("crash") == TaskState::erred);
  CHECK(h.state_of("dep") == TaskState::erred);
  CHECK(h.state_of("after") == TaskState::erred);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 2);  // crash and dep: the two futures the client holds
  const KeyErred* ec = erred_for(errs, "crash");
  const KeyErred* ed = erred_for(errs, "dep");
  REQUIRE(ec != nullptr);
  REQUIRE(ed != nullptr);
  std::string expected = "KilledWorker: task 'crash' was running on 3 workers that died; the last, worker '" +
                         killed_on[2] + "' on host host-" + killed_on[2] + ": killed by signal 11 (SIGSEGV)\n";
  for (int i = 0; i < 3; ++i) {
    expected += "death " + std::to_string(i + 1) + ": worker '" + killed_on[i] + "' on host host-" + killed_on[i] +
                ": killed by signal 11 (SIGSEGV)";
    if (i < 2) expected += "\n";
  }
  CHECK(ec->message == expected);
  CHECK(ec->func == "always_crash");
  CHECK(ed->message == expected);  // a dependent says what actually failed
  CHECK(ed->func == "always_crash");
  // The rest of the job goes on.
  for (int round = 0; round < 3 && !running.empty(); ++round) {
    auto now_running = running;
    running.clear();
    for (auto& [k, v] : now_running) h.done(v.first, v.second);
    for (auto& [k, v] : computes_by_key(h)) running[k] = v;
  }
  for (const char* k : {"o0", "o1", "o2", "o3"}) CHECK(h.state_of(k) == TaskState::memory);
  std::set<std::string> done;
  for (const auto& d : h.to_client<KeyDone>()) done.insert(d.key);
  CHECK(done == std::set<std::string>{"o0", "o1", "o2", "o3"});
  CHECK(counter(h, "workers_died") == 3);
  CHECK(counter(h, "tasks_killed") == 1);
  // Nothing hangs: every future the client holds has its answer.
  CHECK(h.s.count(TaskState::processing) == 0);
  CHECK(h.s.count(TaskState::queued) == 0);
  CHECK(h.s.count(TaskState::waiting) == 0);
}

TEST_CASE("SchedulerFailures.Goodbye.IsNotADeath") {
  Harness h(allowing(1));
  auto a = h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  REQUIRE(wx == a);
  h.s.handle(a, WorkerGoodbye{0}, h.now, h.out);
  CHECK_FALSE(h.s.worker(a)->alive);
  CHECK(h.state_of("x") == TaskState::queued);  // waits for a worker, suspected of nothing
  CHECK(h.to_client<KeyErred>().empty());
  auto b = h.worker("b");
  auto [wx2, cx2] = h.compute_of("x");
  CHECK(wx2 == b);
  CHECK(counter(h, "workers_died") == 0);
  CHECK(counter(h, "tasks_killed") == 0);
}

TEST_CASE("SchedulerFailures.Registration.SameNameWithoutADeathReportIsStillRefused") {
  Harness h;
  auto a = h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  RegisterWorker again;
  again.name = "a";
  again.previous.reason = kSegv;  // a reason without died=true is not a death report
  again.previous.running = {cx.task};
  std::string why;
  CHECK_FALSE(h.s.add_worker(again, "wid-a-imposter", h.now, h.out, &why).has_value());
  CHECK(why.find("already registered") != std::string::npos);
  CHECK(h.s.worker(a)->alive);
  CHECK(h.state_of("x") == TaskState::processing);
  CHECK(h.s.alive_workers().size() == 1);
  CHECK(counter(h, "workers_died") == 0);
  // With the report, the same name is the old worker restarted: the old record goes at once.
  auto a2 = restart(h, "a", {});
  CHECK_FALSE(h.s.worker(a)->alive);
  CHECK(h.s.alive_workers() == std::vector<WorkerId>{a2});
  CHECK(counter(h, "workers_died") == 1);
  // The other workers hear that the old incarnation is gone.
  auto [wx2, cx2] = h.compute_of("x");
  CHECK(wx2 == a2);
}

TEST_CASE("SchedulerFailures.AllowedFailures.ZeroNeverKills") {
  Harness h(allowing(0));
  h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  auto [w, c] = h.compute_of("x");
  for (int death = 0; death < 10; ++death) {
    w = restart(h, "a", {c.task});
    auto next = h.compute_of("x");
    REQUIRE(next.first == w);
    c = next.second;
    CHECK(h.state_of("x") == TaskState::processing);
  }
  CHECK(h.to_client<KeyErred>().empty());
  h.done(w, c);
  auto dones = h.to_client<KeyDone>();
  REQUIRE(dones.size() == 1);
  CHECK(dones[0].key == "x");
  CHECK(counter(h, "workers_died") == 10);
  CHECK(counter(h, "tasks_killed") == 0);
}

TEST_CASE("SchedulerFailures.AllowedFailures.OneKillsAtTheFirstDeathTwoAtTheSecond") {
  for (std::uint32_t allowed : {1u, 2u}) {
    CAPTURE(allowed);
    Harness h(allowing(allowed));
    h.worker("a");
    h.submit({Harness::spec("x", "inc")});
    auto [w, c] = h.compute_of("x");
    for (std::uint32_t death = 1; death <= allowed; ++death) {
      CHECK(h.state_of("x") == TaskState::processing);
      w = restart(h, "a", {c.task}, "exited with code 3");
      if (death < allowed) c = h.compute_of("x").second;
    }
    CHECK(h.state_of("x") == TaskState::erred);
    auto errs = h.to_client<KeyErred>();
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].message.find(allowed == 1 ? std::string("was running on 1 worker that died;")
                                            : "was running on " + std::to_string(allowed) + " workers that died;") !=
          std::string::npos);
    CHECK(errs[0].message.find(": exited with code 3") != std::string::npos);
    CHECK(h.computes().empty());  // not sent again
  }
}

TEST_CASE("SchedulerFailures.KilledWorker.TheDeathListIsBounded") {
  Harness h(allowing(100));
  h.s.logger()->set_level(spdlog::level::err);  // 100 deaths: their warnings are not the point here
  h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  auto c = h.compute_of("x").second;
  std::string long_reason(1000, 'r');  // cut to 500 characters in each line
  for (int death = 1; death < 100; ++death) {
    restart(h, "a", {c.task}, long_reason);
    c = h.compute_of("x").second;
  }
  restart(h, "a", {c.task}, kSegv);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  const std::string& m = errs[0].message;
  CHECK(m.find("KilledWorker: task 'x' was running on 100 workers that died; the last, worker 'a' on host host-a: "
               "killed by signal 11 (SIGSEGV)") == 0);
  CHECK(m.find("death 1: worker 'a' on host host-a: " + std::string(500, 'r') + "...\n") != std::string::npos);
  CHECK(m.find(std::string(501, 'r')) == std::string::npos);
  CHECK(m.find("more deaths not listed") != std::string::npos);
  CHECK(m.size() < 20000);
}

// ---- connection loss: a closed connection and silence since, without a supervisor's report ----

TEST_CASE("SchedulerFailures.ConnectionClosed.ASilentWorkerIsLostWithinAHeartbeat") {
  Harness h(allowing(1));
  auto a = h.worker("a");
  h.worker("b");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  h.s.connection_closed(wx, h.now);
  const auto hb = Harness::config().heartbeat_ms;
  auto early = h.s.tick(h.now + hb - 1, h.out);
  CHECK(early.closed_workers.empty());
  CHECK(h.s.worker(wx)->alive);
  auto r = h.s.tick(h.now + hb, h.out);
  REQUIRE(r.closed_workers == std::vector<WorkerId>{wx});
  CHECK(r.dead_workers.empty());
  CHECK_FALSE(h.s.worker(wx)->alive);
  // No report says what had started: what was processing there is suspected, as for a timeout.
  CHECK(h.state_of("x") == TaskState::erred);
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].message.find("its connection closed and it did not come back") != std::string::npos);
  CHECK(counter(h, "workers_died") == 1);
  (void)a;
}

TEST_CASE("SchedulerFailures.ConnectionClosed.AWorkerThatSpeaksAgainStays") {
  Harness h;
  auto a = h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  h.s.connection_closed(a, h.now);
  // It reconnected (libzmq does so on its own) and sent its heartbeat.
  h.s.handle(a, Heartbeat{h.now + 100}, h.now + 100, h.out);
  const auto hb = Harness::config().heartbeat_ms;
  auto r = h.s.tick(h.now + 3 * hb, h.out);
  CHECK(r.closed_workers.empty());
  CHECK(h.s.worker(a)->alive);
  CHECK(h.state_of("x") == TaskState::processing);
  CHECK(counter(h, "workers_died") == 0);
}

TEST_CASE("SchedulerFailures.ConnectionClosed.TheSupervisorsReportWinsAndCountsOnce") {
  Harness h(allowing(2));
  h.worker("a");
  h.submit({Harness::spec("x", "inc")});
  auto [wx, cx] = h.compute_of("x");
  h.s.connection_closed(wx, h.now);
  // The restarted incarnation's report comes well within the grace: the death is the report's.
  auto a2 = restart(h, "a", {cx.task});
  CHECK_FALSE(h.s.worker(wx)->alive);
  auto r = h.s.tick(h.now + 10 * Harness::config().heartbeat_ms, h.out);
  CHECK(r.closed_workers.empty());
  CHECK(h.s.worker(a2)->alive);
  CHECK(counter(h, "workers_died") == 1);
  CHECK(h.state_of("x") == TaskState::processing);  // death 1 of 2 allowed: running again on a2
}

// The worker's telemetry: the bounded sample of runs, exact totals, fetches, the drain, and the heartbeat that carries it.
#include <doctest/doctest.h>

#include <algorithm>

#include "common/log.hpp"
#include "worker/telemetry.hpp"
#include "worker/worker_state.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::worker;

namespace {

struct IdleExecutor : ExecutorPort {
  bool idle() const override { return true; }
  bool withdraw(TaskId) override { return false; }
  bool can_run_here() const override { return false; }
  std::optional<Completion> run_here(Job) override { return std::nullopt; }
};

bool has_telemetry(const WorkerOutbox& out) {
  return std::any_of(out.to_scheduler.begin(), out.to_scheduler.end(),
                     [](const WorkerToScheduler& m) { return std::holds_alternative<Telemetry>(m); });
}

}  // namespace

TEST_CASE("Telemetry.NothingHappenedDrainsNothing") {
  TelemetryRecorder r;
  CHECK_FALSE(r.drain().has_value());
  r.record_run(TaskId{1}, "inc", 100, 150, 0, false);
  auto t = r.drain();
  REQUIRE(t.has_value());
  CHECK(t->runs.size() == 1);
  CHECK_FALSE(r.drain().has_value());  // the drain emptied it
}

TEST_CASE("Telemetry.RunsAreBoundedTotalsExact") {
  TelemetryRecorder r;
  const std::size_t n = 5 * TelemetryRecorder::kMaxRunsPerMessage + 7;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& f = i % 3 == 0 ? std::string("alpha") : std::string("a_much_longer_function_name_than_sso");
    const std::uint64_t took = i % 17;
    sum += took;
    r.record_run(TaskId{i}, f, 1000 + i, 1000 + i + took, static_cast<std::uint32_t>(i % 4), i % 10 == 0);
  }
  auto t = r.drain();
  REQUIRE(t.has_value());
  CHECK(t->runs.size() == TelemetryRecorder::kMaxRunsPerMessage);
  CHECK(t->runs_dropped == n - TelemetryRecorder::kMaxRunsPerMessage);
  CHECK(t->busy_us == sum);
  CHECK(std::is_sorted(t->runs.begin(), t->runs.end(), [](auto& a, auto& b) { return a.start_us < b.start_us; }));
  for (const auto& run : t->runs) {  // each kept run is one that was recorded, whole
    const std::size_t i = run.start_us - 1000;
    CHECK(run.task == TaskId{i});
    CHECK(run.stop_us == run.start_us + i % 17);
    CHECK(run.thread == i % 4);
    CHECK(run.erred == (i % 10 == 0));
    CHECK(run.func == (i % 3 == 0 ? "alpha" : "a_much_longer_function_name_than_sso"));
  }
  std::uint64_t count = 0, erred = 0, total = 0;
  for (const auto& f : t->totals) {
    count += f.count;
    erred += f.erred;
    total += f.total_us;
    CHECK(f.max_us == 16);
  }
  CHECK(t->totals.size() == 2);
  CHECK(count == n);
  CHECK(erred == (n + 9) / 10);
  CHECK(total == sum);
  auto alpha = std::find_if(t->totals.begin(), t->totals.end(), [](auto& f) { return f.func == "alpha"; });
  REQUIRE(alpha != t->totals.end());
  CHECK(alpha->count == (n + 2) / 3);
  // The next interval starts from zero.
  r.record_run(TaskId{1}, "alpha", 5, 6, 0, false);
  auto t2 = r.drain();
  REQUIRE(t2.has_value());
  CHECK(t2->runs.size() == 1);
  CHECK(t2->runs_dropped == 0);
  REQUIRE(t2->totals.size() == 1);
  CHECK(t2->totals[0].count == 1);
  CHECK(t2->busy_us == 1);
}

TEST_CASE("Telemetry.SampleSpansTheInterval") {
  // A dense interval is sampled throughout, not only at its beginning or end.
  TelemetryRecorder r;
  const std::size_t n = 20 * TelemetryRecorder::kMaxRunsPerMessage;
  for (std::size_t i = 0; i < n; ++i) r.record_run(TaskId{i}, "inc", i, i + 1, 0, false);
  auto t = r.drain();
  REQUIRE(t.has_value());
  std::size_t quarters[4] = {};
  for (const auto& run : t->runs) ++quarters[run.start_us * 4 / n];
  for (std::size_t q : quarters) CHECK(q > TelemetryRecorder::kMaxRunsPerMessage / 8);
}

TEST_CASE("Telemetry.TransfersPerPeer") {
  TelemetryRecorder r;
  r.record_fetch("tcp://a:1", 2, 100, 30);
  r.record_fetch("tcp://b:2", 1, 10, 5);
  r.record_fetch("tcp://a:1", 1, 50, 20);
  auto t = r.drain();
  REQUIRE(t.has_value());
  CHECK(t->runs.empty());
  REQUIRE(t->transfers.size() == 2);
  CHECK(t->transfers[0] == TransferTotals{"tcp://a:1", 3, 150, 50});
  CHECK(t->transfers[1] == TransferTotals{"tcp://b:2", 1, 10, 5});
  CHECK_FALSE(r.drain().has_value());
}

TEST_CASE("Telemetry.TapLinesIncluded") {
  log::set_level("warn");
  auto logger = log::make("worker", "telemetry-test");
  auto tap = log::LogTap::attach(logger);
  TelemetryRecorder r(tap);
  logger->info("worker started");
  logger->debug("not kept");
  auto t = r.drain();
  REQUIRE(t.has_value());  // a line is news
  REQUIRE(t->log.size() == 1);
  CHECK(t->log[0].level == "info");
  CHECK(t->log[0].text == "worker started");
  CHECK(t->log[0].time_us > 0);
  CHECK_FALSE(r.drain().has_value());
}

TEST_CASE("Telemetry.GoesWithTheHeartbeatOnceWelcomed") {
  auto rec = std::make_shared<TelemetryRecorder>();
  IdleExecutor exec;
  WorkerConfig c;
  c.telemetry = rec;
  WorkerState s(c, exec);
  WorkerOutbox out;
  std::uint64_t now = 1000;
  s.started(now);
  rec->record_run(TaskId{1}, "inc", 1, 2, 0, false);
  s.tick(now += 1000, out);
  CHECK_FALSE(has_telemetry(out));  // not before the welcome: it waits
  out.to_scheduler.clear();
  s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, now, out);
  s.tick(now += 1, out);
  CHECK_FALSE(has_telemetry(out));  // not between heartbeats
  s.tick(now += 1000, out);
  REQUIRE(has_telemetry(out));
  out.to_scheduler.clear();
  s.tick(now += 1000, out);
  CHECK_FALSE(has_telemetry(out));  // nothing new: none sent
}

TEST_CASE("Telemetry.FetchFromPeerRecorded") {
  auto rec = std::make_shared<TelemetryRecorder>();
  IdleExecutor exec;
  WorkerConfig c;
  c.telemetry = rec;
  const dtask_task_v1 inc{"inc", nullptr, 1, nullptr};
  c.find_task = [&](const std::string&) { return &inc; };
  WorkerState s(c, exec);
  WorkerOutbox out;
  std::uint64_t now = 1000;
  s.started(now);
  s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, now, out);
  ComputeTask ct;
  ct.task = TaskId{10};
  ct.key = "inc-10";
  ct.func = "inc";
  TaskArg a;
  a.kind = TaskArg::dep;
  a.refs = {TaskId{77}};
  ct.args.push_back(a);
  ct.deps = {DepLocation{TaskId{77}, {WorkerId{2}}, {"tcp://peer:9"}}};
  s.handle(ct, now, out);
  s.tick(now, out);
  REQUIRE(out.to_peers.size() == 1);
  const auto rid = std::get<GetData>(out.to_peers[0].msg).request_id;
  s.handle_reply(DataReply{rid, {DataItem{TaskId{77}, true, Codec<int>::encode(1)}}}, now + 3, out);
  auto t = rec->drain();
  REQUIRE(t.has_value());
  REQUIRE(t->transfers.size() == 1);
  CHECK(t->transfers[0].peer == "tcp://peer:9");
  CHECK(t->transfers[0].count == 1);
  CHECK(t->transfers[0].bytes == Codec<int>::encode(1).nbytes());
  CHECK(t->transfers[0].total_us == 3000);
}

// The worker's memory rules (spill over target, read back on demand, pause, reports, release), driven without sockets or files through WorkerState.
#include <doctest/doctest.h>

#include <algorithm>

#include "worker/worker_state.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::worker;

namespace {

const dtask_task_v1 kMake{"make", nullptr, 1, nullptr};
constexpr std::uint64_t kLimit = 10'000;  // target 6000, spill 8000, pause 8500, terminate 9500
constexpr std::size_t kResult = 2'000;

struct FakeExecutor : ExecutorPort {
  bool paused = false;
  bool idle() const override { return true; }
  bool withdraw(TaskId) override { return false; }
  bool can_run_here() const override { return true; }
  std::optional<Completion> run_here(Job) override { return std::nullopt; }
  void set_paused(bool p) override { paused = p; }
};

Payload bytes(std::size_t n, char c = 'x') {
  Payload p;
  p.frames.push_back(Buffer::adopt(std::vector<char>(n, c)));
  return p;
}

struct Harness {
  FakeExecutor exec;
  WorkerState s;
  WorkerOutbox out;
  std::uint64_t now = 1000;

  explicit Harness(FastPaths fp, std::uint64_t limit = kLimit) : s(config(fp, limit), exec) {
    s.started(now);
    s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, now, out);
  }
  static WorkerConfig config(FastPaths fp, std::uint64_t limit) {
    WorkerConfig c;
    c.fast_paths = fp;
    c.memory_limit = limit;
    // A band of 2000 between target and spill: one write of a 2000-byte result out is not "behind".
    c.memory_thresholds = MemoryThresholds{0.6, 0.8, 0.85, 0.95};
    c.find_task = [](const std::string& name) -> const dtask_task_v1* { return name == "make" ? &kMake : nullptr; };
    return c;
  }
  // The ComputeTask of task `id`, with no inputs, in one pass.
  void give(std::uint64_t id) {
    ComputeTask m;
    m.task = TaskId{id};
    m.key = "k" + std::to_string(id);
    m.func = "make";
    s.handle(std::move(m), now, out);
    REQUIRE(s.start_ready(out));
  }
  // Task `id` with no inputs, run, and its result of `n` bytes (filled with `c`) stored.
  void result(std::uint64_t id, std::size_t n = kResult, char c = 'x') {
    give(id);
    s.on_completion(Completion{TaskId{id}, true, bytes(n, c), "", &kMake, 1'000'000}, out);
  }
  // Task `id` whose one input is `dep` (held here).
  void needs(std::uint64_t id, std::uint64_t dep) {
    ComputeTask m;
    m.task = TaskId{id};
    m.key = "k" + std::to_string(id);
    m.func = "make";
    TaskArg a;
    a.kind = TaskArg::dep;
    a.refs = {TaskId{dep}};
    m.args.push_back(a);
    m.deps.push_back(DepLocation{TaskId{dep}, {WorkerId{1}}, {"tcp://me"}});
    s.handle(std::move(m), now, out);
    REQUIRE(s.start_ready(out));
  }
  std::vector<WorkerOutbox::Spill> take_spill(WorkerOutbox::Spill::Kind kind) {
    std::vector<WorkerOutbox::Spill> r;
    std::erase_if(out.spill, [&](auto& x) {
      if (x.kind != kind) return false;
      r.push_back(x);
      return true;
    });
    return r;
  }
  std::vector<std::uint64_t> ids(const std::vector<WorkerOutbox::Spill>& v) {
    std::vector<std::uint64_t> r;
    for (auto& x : v) r.push_back(x.id);
    return r;
  }
  // Every write out finishes (its file is `stored` bytes).
  void writes_done(std::uint64_t stored = 100) {
    for (auto& w : take_spill(WorkerOutbox::Spill::Kind::write)) {
      s.on_spill(SpillDone{SpillDone::Kind::written, w.id, w.tag, true, stored, nullptr, {}}, out);
    }
  }
  void read_done(const WorkerOutbox::Spill& r, std::size_t n = kResult, char c = 'x') {
    s.on_spill(SpillDone{SpillDone::Kind::read, r.id, r.tag, true, 0, std::make_shared<const Payload>(bytes(n, c)), {}},
               out);
  }
  std::vector<TaskId> handed_to_executor() {
    std::vector<TaskId> r;
    for (auto& j : out.to_executor) r.push_back(j.id);
    out.to_executor.clear();
    return r;
  }
  template <class T>
  std::vector<T> sent() {
    std::vector<T> r;
    for (auto& m : out.to_scheduler) {
      if (auto* x = std::get_if<T>(&m)) r.push_back(*x);
    }
    return r;
  }
  void tick(std::uint64_t process) {
    s.memory_sample(process);
    s.tick(now, out);
  }
};

const FastPaths kModes[] = {FastPaths::all(), FastPaths::none()};

}  // namespace

TEST_CASE("WorkerMemory.OverTargetSpillsLeastRecentlyUsed") {
  for (FastPaths fp : kModes) {
    Harness h(fp);
    h.result(1);
    h.result(2);
    h.result(3);
    CHECK(h.out.spill.empty());  // 6000: at target, not over
    h.result(4);                 // 8000: 2000 over
    auto w = h.take_spill(WorkerOutbox::Spill::Kind::write);
    CHECK(h.ids(w) == std::vector<std::uint64_t>{1});
    CHECK(h.s.store().writing_bytes() == kResult);
    // Writes out count as gone: the next result spills the next one only.
    h.result(5);
    CHECK(h.ids(h.take_spill(WorkerOutbox::Spill::Kind::write)) == std::vector<std::uint64_t>{2});
    h.out.spill.insert(h.out.spill.end(), w.begin(), w.end());
    h.writes_done();
    CHECK(h.s.store().find(1)->where == DataStore::Where::disk);
    CHECK(h.s.store().held_bytes() == 4 * kResult);
    CHECK(h.s.has_result(TaskId{1}));
  }
}

TEST_CASE("WorkerMemory.NoLimitNoSpill") {
  Harness h(FastPaths::all(), 0);
  for (std::uint64_t i = 1; i <= 10; ++i) h.result(i);
  h.tick(1ull << 40);
  CHECK(h.out.spill.empty());
  CHECK_FALSE(h.s.paused());
  CHECK(h.sent<MemoryReport>().empty());
}

TEST_CASE("WorkerMemory.SpilledInputIsReadBackBeforeTheJobIsSubmitted") {
  for (FastPaths fp : kModes) {
    Harness h(fp);
    for (std::uint64_t i = 1; i <= 4; ++i) h.result(i);
    h.writes_done();  // 1 on disk
    h.out.to_executor.clear();
    h.needs(10, 1);
    CHECK(h.handed_to_executor().empty());
    auto reads = h.take_spill(WorkerOutbox::Spill::Kind::read);
    REQUIRE(h.ids(reads) == std::vector<std::uint64_t>{1});
    h.needs(11, 1);  // a second task waits for the same read
    CHECK(h.take_spill(WorkerOutbox::Spill::Kind::read).empty());
    h.read_done(reads[0], kResult, 'r');
    REQUIRE(h.s.start_ready(h.out));
    auto jobs = h.out.to_executor;
    CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{10}, TaskId{11}});
    REQUIRE(jobs.size() == 2);
    CHECK(static_cast<char>(jobs[0].args[0].value->frames[0].data()[0]) == 'r');
    CHECK(h.s.store().find(1)->where == DataStore::Where::memory);
  }
}

TEST_CASE("WorkerMemory.GetDataOfASpilledItemIsAnsweredWhenItIsBack") {
  for (FastPaths fp : kModes) {
    Harness h(fp);
    for (std::uint64_t i = 1; i <= 4; ++i) h.result(i);
    h.writes_done();
    h.s.handle_request(GetData{77, {TaskId{1}, TaskId{2}, TaskId{99}}}, "peer-7", h.out);
    CHECK(h.out.replies.empty());
    auto reads = h.take_spill(WorkerOutbox::Spill::Kind::read);
    REQUIRE(reads.size() == 1);
    h.read_done(reads[0], kResult, 'r');
    REQUIRE(h.out.replies.size() == 1);
    CHECK(h.out.replies[0].to == "peer-7");
    auto& reply = std::get<DataReply>(h.out.replies[0].msg);
    CHECK(reply.request_id == 77);
    REQUIRE(reply.items.size() == 3);
    CHECK(reply.items[0].found);
    CHECK(static_cast<char>(reply.items[0].data.frames[0].data()[0]) == 'r');
    CHECK(reply.items[1].found);
    CHECK(reply.items[1].data.nbytes() == kResult);
    CHECK_FALSE(reply.items[2].found);
  }
}

TEST_CASE("WorkerMemory.PauseStopsStartingJobsAndResumeStartsThem") {
  for (FastPaths fp : kModes) {
    Harness h(fp);
    h.tick(9'000);  // above pause (8500)
    CHECK(h.s.paused());
    CHECK(h.exec.paused);
    auto reports = h.sent<MemoryReport>();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].paused);
    CHECK(reports[0].limit == kLimit);
    CHECK(reports[0].process == 9'000);
    h.out.to_scheduler.clear();
    h.give(1);  // not started
    CHECK(h.handed_to_executor().empty());
    h.s.handle_request(StartTask{5, "early", "make", {}, "client"}, "client", h.out);
    REQUIRE(h.s.start_ready(h.out));
    CHECK(h.handed_to_executor().empty());
    CHECK(std::any_of(h.out.replies.begin(), h.out.replies.end(),
                      [](auto& r) { return std::holds_alternative<NotStarted>(r.msg); }));
    h.tick(5'000);
    CHECK_FALSE(h.s.paused());
    CHECK_FALSE(h.exec.paused);
    reports = h.sent<MemoryReport>();
    REQUIRE(reports.size() == 1);
    CHECK_FALSE(reports[0].paused);
    REQUIRE(h.s.start_ready(h.out));
    CHECK(h.handed_to_executor() == std::vector<TaskId>{TaskId{1}});
  }
}

TEST_CASE("WorkerMemory.ProcessAboveSpillSpillsMore") {
  Harness h(FastPaths::all());
  h.result(1);
  h.result(2);
  CHECK(h.out.spill.empty());
  h.tick(8'100);  // above spill (8000): down to target (6000) means 2100 more
  CHECK(h.ids(h.take_spill(WorkerOutbox::Spill::Kind::write)) == std::vector<std::uint64_t>{1, 2});
  h.tick(8'100);  // the writes out cover it
  CHECK(h.out.spill.empty());
}

TEST_CASE("WorkerMemory.ReleaseOfASpilledResultDeletesItsFile") {
  Harness h(FastPaths::all());
  for (std::uint64_t i = 1; i <= 5; ++i) h.result(i);
  auto writes = h.take_spill(WorkerOutbox::Spill::Kind::write);
  REQUIRE(h.ids(writes) == std::vector<std::uint64_t>{1, 2});
  h.out.spill.push_back(writes[0]);
  h.writes_done();  // 1 on disk, 2 still being written
  h.s.handle(ReleaseTasks{{TaskId{1}, TaskId{2}, TaskId{3}}}, h.now, h.out);
  CHECK(h.ids(h.take_spill(WorkerOutbox::Spill::Kind::remove)) == std::vector<std::uint64_t>{1, 2});
  CHECK(h.out.spill.empty());  // 3 was in memory: no file
  // The late completion of 2's write changes nothing.
  h.s.on_spill(SpillDone{SpillDone::Kind::written, 2, writes[1].tag, true, 100, nullptr, {}}, h.out);
  CHECK_FALSE(h.s.has_result(TaskId{2}));
  CHECK(h.s.store().disk_count() == 0);
  CHECK(h.s.store().size() == 2);
}

TEST_CASE("WorkerMemory.AResultBiggerThanTheLimitIsReportedOnceOnDiskOrFails") {
  Harness h(FastPaths::all());
  h.result(1, kLimit + 1);
  CHECK(h.sent<TaskDone>().empty());
  auto w = h.take_spill(WorkerOutbox::Spill::Kind::write);
  REQUIRE(h.ids(w) == std::vector<std::uint64_t>{1});
  h.s.on_spill(SpillDone{SpillDone::Kind::written, 1, w[0].tag, true, 50, nullptr, {}}, h.out);
  auto done = h.sent<TaskDone>();
  REQUIRE(done.size() == 1);
  CHECK(done[0].nbytes == kLimit + 1);
  h.out.to_scheduler.clear();
  h.result(2, kLimit + 1);
  w = h.take_spill(WorkerOutbox::Spill::Kind::write);
  REQUIRE(w.size() == 1);
  h.s.on_spill(SpillDone{SpillDone::Kind::written, 2, w[0].tag, false, 0, nullptr, "No space left on device"}, h.out);
  CHECK(h.sent<TaskDone>().empty());
  auto failed = h.sent<TaskFailed>();
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].message.find("bigger than the worker's memory_limit") != std::string::npos);
  CHECK(failed[0].message.find("No space left on device") != std::string::npos);
  CHECK_FALSE(h.s.has_result(TaskId{2}));
}

TEST_CASE("WorkerMemory.AFailedSpillWritePausesAndIsRetried") {
  Harness h(FastPaths::all());
  for (std::uint64_t i = 1; i <= 4; ++i) h.result(i);
  auto w = h.take_spill(WorkerOutbox::Spill::Kind::write);
  REQUIRE(w.size() == 1);
  h.s.on_spill(SpillDone{SpillDone::Kind::written, 1, w[0].tag, false, 0, nullptr, "No space left on device"}, h.out);
  w.clear();  // the I/O thread lets go of the payload before it reports
  CHECK(h.s.paused());
  CHECK(h.s.has_result(TaskId{1}));
  CHECK(h.s.store().memory_bytes() == 4 * kResult);
  h.tick(0);  // too soon to retry
  CHECK(h.out.spill.empty());
  CHECK(h.s.paused());
  h.now += kSpillRetryMs;
  h.tick(0);
  CHECK(h.ids(h.take_spill(WorkerOutbox::Spill::Kind::write)) == std::vector<std::uint64_t>{1});
  h.out.spill.clear();
  h.s.handle(ReleaseTasks{{TaskId{1}, TaskId{2}}}, h.now, h.out);  // back under target
  h.tick(0);
  CHECK_FALSE(h.s.paused());
}

TEST_CASE("WorkerMemory.ReadsBackArePacedByMemory") {
  for (FastPaths fp : kModes) {
    Harness h(fp);
    for (std::uint64_t i = 1; i <= 6; ++i) h.result(i);
    h.writes_done();  // 1, 2, 3 on disk; 4, 5, 6 (6000) in memory
    REQUIRE(h.s.store().disk_count() == 3);
    h.out.to_executor.clear();
    h.needs(10, 1);
    h.needs(11, 2);
    h.needs(12, 3);
    // 6000 held + 2000 read fit under spill (8000); a second read would not.
    auto reads = h.take_spill(WorkerOutbox::Spill::Kind::read);
    CHECK(h.ids(reads) == std::vector<std::uint64_t>{1});
    CHECK(h.handed_to_executor().empty());
  }
}

TEST_CASE("WorkerMemory.ReleasedWhileWaitingToBeReadBackIsNotFound") {
  for (FastPaths fp : kModes) {
    Harness h(fp);
    for (std::uint64_t i = 1; i <= 6; ++i) h.result(i);
    h.writes_done();  // 1, 2, 3 on disk
    h.s.handle_request(GetData{5, {TaskId{1}, TaskId{2}}}, "peer-5", h.out);
    auto reads = h.take_spill(WorkerOutbox::Spill::Kind::read);
    REQUIRE(h.ids(reads) == std::vector<std::uint64_t>{1});  // 2 waits for room
    h.s.handle(ReleaseTasks{{TaskId{2}}}, h.now, h.out);
    CHECK(h.out.replies.empty());
    h.read_done(reads[0]);
    REQUIRE(h.out.replies.size() == 1);
    auto& reply = std::get<DataReply>(h.out.replies[0].msg);
    REQUIRE(reply.items.size() == 2);
    CHECK(reply.items[0].found);
    CHECK_FALSE(reply.items[1].found);
  }
}

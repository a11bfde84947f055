// The worker's supervisor: its restart policy and exit verdicts (pure), the running-task board, and the fork loop.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <future>

#include "worker/executor.hpp"
#include "worker/running_board.hpp"
#include "worker/supervisor.hpp"

using namespace dtask::worker;
using dtask::protocol::TaskId;
using namespace std::chrono_literals;

namespace {

RestartPolicy policy() {
  RestartPolicy p;
  p.max_deaths = 4;
  p.window = 60s;
  p.first_delay = 100ms;
  p.max_delay = 350ms;
  return p;
}

// A child about to crash: writes no core file (they would pile up in the test directory) and
// dies the default way, not in doctest's crash handler (inherited across fork).
void prepare_to_crash() {
  struct rlimit none {0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  ::signal(SIGSEGV, SIG_DFL);
  ::signal(SIGABRT, SIG_DFL);
}

// A task entry whose "function" looks at the board while it runs (what a supervisor would read
// if the process died right then).
std::shared_ptr<RunningBoard> g_board;
std::promise<std::vector<TaskId>> g_seen_by_thread;
std::vector<TaskId> g_seen_here;
void look_at_board_here(dtask_call* call) {
  g_seen_here = g_board->running();
  reinterpret_cast<dtask::detail::Call*>(call)->ok = true;
}
void look_at_board_on_thread(dtask_call* call) {
  g_seen_by_thread.set_value(g_board->running());
  reinterpret_cast<dtask::detail::Call*>(call)->ok = true;
}
const dtask_task_v1 kLookHere{"look_here", nullptr, 0, look_at_board_here};
const dtask_task_v1 kLookOnThread{"look_on_thread", nullptr, 0, look_at_board_on_thread};

}  // namespace

// ---- the restart policy -------------------------------------------------------------------

TEST_CASE("Supervisor.Policy.FirstDeathRestartsAtOnce") {
  // Loss must be mended within a second: the first death in the window costs no wait.
  CHECK(decide_restart(policy(), {1'000'000}, 1'000'000) == RestartDecision{true, 0ms, 1});
}

TEST_CASE("Supervisor.Policy.DelayDoublesPerDeathInTheWindowUpToTheCap") {
  const auto p = policy();
  CHECK(decide_restart(p, {1000, 2000}, 2000) == RestartDecision{true, 100ms, 2});
  CHECK(decide_restart(p, {1000, 2000, 3000}, 3000) == RestartDecision{true, 200ms, 3});
  CHECK(decide_restart(p, {1000, 2000, 3000, 4000}, 4000) == RestartDecision{true, 350ms, 4});  // capped
}

TEST_CASE("Supervisor.Policy.GivesUpAfterMaxDeathsInTheWindow") {
  const auto p = policy();
  auto d = decide_restart(p, {1000, 2000, 3000, 4000, 5000}, 5000);
  CHECK_FALSE(d.restart);
  CHECK(d.deaths_in_window == 5);
  RestartPolicy never = p;
  never.max_deaths = 0;
  CHECK_FALSE(decide_restart(never, {1000}, 1000).restart);
}

TEST_CASE("Supervisor.Policy.DeathsOutsideTheWindowAreForgotten") {
  // Old deaths, a minute and more ago, no longer count: a worker that has run well since starts
  // afresh (the one at 4000 is 59.5 s before the last: still inside).
  const auto p = policy();
  CHECK(decide_restart(p, {1000, 2000, 3000, 4000, 200'000}, 200'000) == RestartDecision{true, 0ms, 1});
  CHECK(decide_restart(p, {1000, 2000, 3000, 4000, 63'500}, 63'500) == RestartDecision{true, 100ms, 2});
}

// ---- what a child's end means -------------------------------------------------------------

TEST_CASE("Supervisor.Exit.ACodeIsFinal") {
  CHECK(judge_exit(W_EXITCODE(0, 0), 0) == ExitVerdict{false, 0});
  CHECK(judge_exit(W_EXITCODE(3, 0), 0) == ExitVerdict{false, 3});
  CHECK(judge_exit(W_EXITCODE(143, 0), SIGTERM) == ExitVerdict{false, 143});
}

TEST_CASE("Supervisor.Exit.ASignalNobodyForwardedRestarts") {
  CHECK(judge_exit(W_EXITCODE(0, SIGSEGV), 0) == ExitVerdict{true, 128 + SIGSEGV});
  CHECK(judge_exit(W_EXITCODE(0, SIGKILL), 0) == ExitVerdict{true, 128 + SIGKILL});
  CHECK(judge_exit(W_EXITCODE(0, SIGABRT), 0) == ExitVerdict{true, 128 + SIGABRT});
}

TEST_CASE("Supervisor.Exit.AfterAForwardedStopNothingRestarts") {
  // Asked to stop: whatever the child died of on its way out, it stays dead.
  CHECK(judge_exit(W_EXITCODE(0, SIGTERM), SIGTERM) == ExitVerdict{false, 128 + SIGTERM});
  CHECK(judge_exit(W_EXITCODE(0, SIGSEGV), SIGINT) == ExitVerdict{false, 128 + SIGSEGV});
}

TEST_CASE("Supervisor.Exit.Described") {
  CHECK(describe_exit(W_EXITCODE(0, SIGSEGV)) == "killed by signal 11 (SIGSEGV)");
  CHECK(describe_exit(W_EXITCODE(0, SIGKILL)) == "killed by signal 9 (SIGKILL)");
  CHECK(describe_exit(W_EXITCODE(0, SIGABRT)) == "killed by signal 6 (SIGABRT)");
  CHECK(describe_exit(W_EXITCODE(3, 0)) == "exited with code 3");
}

// ---- the running-task board ---------------------------------------------------------------

TEST_CASE("Supervisor.Board.ShowsTheTasksRunningNow") {
  auto b = RunningBoard::make_private(3);
  CHECK(b->running().empty());
  b->start(0, TaskId{0});  // id 0 is a real id: stored as 1
  b->start(2, TaskId{42});
  CHECK(b->running() == std::vector<TaskId>{TaskId{0}, TaskId{42}});
  b->end(0);
  CHECK(b->running() == std::vector<TaskId>{TaskId{42}});
  b->start(7, TaskId{5});  // a slot past the end is ignored, not written out of bounds
  CHECK(b->running() == std::vector<TaskId>{TaskId{42}});
  b->clear();
  CHECK(b->running().empty());
}

TEST_CASE("Supervisor.Board.AnEarlyStartWithoutTaskIdReadsIdle") {
  // early_start.cpp runs a job with id ~0 until its ComputeTask adopts it: no task to blame.
  auto b = RunningBoard::make_private(2);
  b->start(1, TaskId{~std::uint64_t{0}});
  CHECK(b->running().empty());
}

TEST_CASE("Supervisor.Board.ASharedBoardOutlivesTheChildThatWroteIt") {
  auto b = RunningBoard::make_shared_across_fork(4);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    b->start(1, TaskId{17});
    b->start(3, TaskId{99});
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(b->running() == std::vector<TaskId>{TaskId{17}, TaskId{99}});
  auto p = RunningBoard::make_private(4);
  child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    p->start(1, TaskId{17});
    ::_exit(0);
  }
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(p->running().empty());  // a private board is the child's own copy
}

TEST_CASE("Supervisor.Board.TheExecutorMarksTheTaskItRunsUntilItEnds") {
  g_board = RunningBoard::make_private(3);  // 2 executor threads + the loop thread's slot
  std::promise<std::vector<TaskId>> fresh;
  g_seen_by_thread.swap(fresh);
  auto seen = g_seen_by_thread.get_future();
  {
    Executor exec(2, {}, "unit", [] {}, g_board);
    // On the loop thread (run_here): marked in the slot after the threads' while it runs.
    Job here;
    here.id = TaskId{11};
    here.entry = &kLookHere;
    CHECK(exec.run_here(std::move(here)).ok);
    CHECK(g_seen_here == std::vector<TaskId>{TaskId{11}});
    CHECK(g_board->running().empty());
    // On an executor thread.
    Job job;
    job.id = TaskId{12};
    job.entry = &kLookOnThread;
    exec.submit(std::move(job));
    CHECK(seen.get() == std::vector<TaskId>{TaskId{12}});
    exec.shutdown(std::chrono::milliseconds(10'000));
  }
  CHECK(g_board->running().empty());
  g_board.reset();
}

// ---- the fork loop ------------------------------------------------------------------------

TEST_CASE("Supervisor.Loop.ACrashedIncarnationIsFollowedByOneToldWhatRanWhenItDied") {
  SuperviseOptions o;
  o.name = "unit";
  o.board_slots = 2;
  // The second incarnation exits 42 only if it was told exactly how the first one ended.
  int code = supervise(o, [](const dtask::protocol::PreviousExit& previous, std::shared_ptr<RunningBoard> board) {
    if (!previous.died) {
      prepare_to_crash();
      board->start(1, TaskId{7});
      ::raise(SIGSEGV);
      return 1;
    }
    const bool told = previous.reason == "killed by signal 11 (SIGSEGV)" && previous.running == std::vector<TaskId>{TaskId{7}} &&
                      board->running().empty();
    return told ? 42 : 1;
  });
  CHECK(code == 42);
}

TEST_CASE("Supervisor.Loop.AnExitCodeEndsItWithoutARestart") {
  SuperviseOptions o;
  o.name = "unit";
  int code = supervise(o, [](const dtask::protocol::PreviousExit& previous, std::shared_ptr<RunningBoard>) {
    return previous.died ? 1 : 3;
  });
  CHECK(code == 3);
}

TEST_CASE("Supervisor.Loop.ACrashLoopEndsWhenTheBudgetIsSpent") {
  SuperviseOptions o;
  o.name = "unit";
  o.policy.max_deaths = 2;
  o.policy.first_delay = 1ms;
  o.policy.max_delay = 2ms;
  // Three incarnations: the first two deaths are restarted, the third is one too many.
  int code = supervise(o, [](const dtask::protocol::PreviousExit&, std::shared_ptr<RunningBoard>) {
    prepare_to_crash();
    std::abort();
    return 0;
  });
  CHECK(code == 128 + SIGABRT);
}

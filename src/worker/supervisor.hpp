// The worker's supervisor: runs one incarnation at a time in a forked child and restarts it when it dies by a signal.
//
// Who runs it: the worker role of a rank (bootstrap/roles.cpp: the role process, forked before
// MPI_Init, never touches MPI, so it may fork again) and `dtask-worker` (and so LocalCluster with
// processes=true, which starts dtask-worker processes). Threads-mode LocalCluster has no
// supervisor: a task that crashes its process crashes the whole program.
//
// What it decides (pure, unit-tested: judge_exit, decide_restart):
// - a child that exits with a code is final (shutdown, scheduler lost, drain done): supervise()
//   returns that code;
// - a child killed by a signal the supervisor did not forward (SIGSEGV, SIGABRT, SIGKILL from
//   the OOM killer or kill -9, ...) is restarted, unless the crash-loop budget is spent;
// - once the supervisor has forwarded SIGTERM/SIGINT it never restarts: it was asked to stop.
// The next incarnation gets the same name and a PreviousExit (died, the reason from
// describe_exit, the tasks the RunningBoard showed running) to put in its RegisterWorker, so the
// scheduler drops the old incarnation at once and counts the crash against those tasks only.
//
// Concurrency: the supervisor is single-threaded. Its SIGTERM/SIGINT handler only reads the
// current child's pid and writes the forwarded signal (both atomics) and calls kill(). The
// fork happens with those signals blocked, so a signal is never lost between fork and the pid
// being recorded. The child sets PR_SET_PDEATHSIG (SIGTERM): a worker whose supervisor is gone
// leaves in order instead of running on alone.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/messages.hpp"
#include "worker/running_board.hpp"

namespace dtask::worker {

// Against crash loops: how many deaths a supervisor takes within a window, and how long it waits
// before the next incarnation.
struct RestartPolicy {
  int max_deaths = 10;                           // deaths within `window`; one more and it gives up
  std::chrono::milliseconds window{60'000};
  std::chrono::milliseconds first_delay{100};    // before the 2nd restart within the window (the 1st is at once)
  std::chrono::milliseconds max_delay{10'000};   // the delay doubles per death up to this
};

struct RestartDecision {
  bool restart = false;
  std::chrono::milliseconds delay{0};
  int deaths_in_window = 0;
  bool operator==(const RestartDecision&) const = default;
};

// Pure. `deaths_ms`: when each incarnation died (any clock, oldest first, the latest included);
// `now_ms` on the same clock. The first death within the window restarts at once (loss must be
// mended within a second), later ones wait first_delay, doubled per further death, up to
// max_delay; more than max_deaths within the window: give up.
RestartDecision decide_restart(const RestartPolicy& policy, const std::vector<std::uint64_t>& deaths_ms,
                               std::uint64_t now_ms);

struct ExitVerdict {
  bool restart = false;  // died by a signal nobody asked for
  int code = 0;          // what the supervisor returns if it stops here: the exit code, or 128 + signal
  bool operator==(const ExitVerdict&) const = default;
};

// Pure. `wait_status` as waitpid() gives it; `forwarded_signal`: the signal the supervisor
// forwarded to its child (0: none).
ExitVerdict judge_exit(int wait_status, int forwarded_signal);

// "killed by signal 11 (SIGSEGV)", "exited with code 3" (wait_status as waitpid() gives it).
std::string describe_exit(int wait_status);

struct SuperviseOptions {
  std::string name;       // the worker's name, for the log lines
  std::string where;      // log prefix
  std::size_t board_slots = 2;  // executor threads + 1 (the loop thread)
  RestartPolicy policy;
};

// Runs in the child: the worker's whole life (build it, run it), told how the incarnation
// before ended and given the board to mark running tasks on; returns the exit code.
using Incarnation = std::function<int(const protocol::PreviousExit& previous, std::shared_ptr<RunningBoard> board)>;

// Forks incarnations until one exits with a code (returned), the supervisor is asked to stop
// (SIGTERM/SIGINT, forwarded; returns the child's end), or the restart budget is spent (returns
// 128 + the last signal). Installs its own SIGTERM/SIGINT handlers for its lifetime. Must be
// called with no other thread running (it forks).
int supervise(const SuperviseOptions& options, const Incarnation& incarnation);

// ---- several workers in one process tree (dtask-worker --nworkers N) ----
//
// The parent forks one member per worker (each member runs its own supervise(), so each worker
// is restarted on its own), forwards SIGTERM/SIGINT to every member still running, and returns
// once all have exited. Members get PR_SET_PDEATHSIG (SIGTERM): they leave if the parent dies.

// Pure. --lifetime T --lifetime-stagger S: one worker's lifetime, T moved by (2u - 1) * S for a
// uniform draw u in [0, 1] (so within +/- S), at least 1 ms; 0 (no lifetime) stays 0.
std::uint64_t staggered_lifetime_ms(std::uint64_t lifetime_ms, std::uint64_t stagger_ms, double u);

// Pure. The group's exit code from its members' codes in the order they exited: the first
// non-zero one, else 0 (a member killed by a signal counts as 128 + signal).
int group_exit_code(const std::vector<int>& codes_in_exit_order);

// Runs member(i) for i in [0, n) in n forked children and waits for all; returns
// group_exit_code. Installs its own SIGTERM/SIGINT handlers for its lifetime. Must be called
// with no other thread running (it forks).
int run_group(std::size_t n, const std::function<int(std::size_t index)>& member, const std::string& where);

}  // namespace dtask::worker

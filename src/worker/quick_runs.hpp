// Fast path "run on the loop thread": which task functions are quick enough, by their record of runs.
//
// Purpose: a task of a few microseconds costs less run on the worker's loop thread than handed to
//   an executor thread and back (two thread hand-offs, issue 4, W3). This unit keeps, per task
//   function, the record that says whether it may run there.
// Inputs: every finished run's duration (note_run, wherever it ran) and every run on the loop
//   thread that kept the loop (note_loop_run).
// Action: a function that finished within kRunHereMaxNs kRunHereAfterQuickRuns times in a row may
//   run on the loop thread (WorkerState decides when: one ready job, nothing else here). A run
//   there that overruns is a strike, and the function must be quick kRunHereAfterQuickRuns times
//   again; with kRunHereMaxStrikes strikes it runs there no more. A strike is forgiven (a pardon)
//   after kQuickRunsPerPardon quick runs anywhere, so rare preemptions on a busy node do not cost
//   a long job its short path for good, while a function that is often slow stays off the loop.
// Caveats: a preempted quick run and a function that turned slow look alike (both are strikes).
//   A run that holds the loop for long is rescued by the standby thread (loop_takeover.hpp), not
//   here. Switched off (FastPaths::run_on_loop = false), nothing may run on the loop thread; early
//   starts (early_start.hpp) run there too, so they are off as well.
#pragma once

#include <cstdint>
#include <unordered_map>

#include <dtask/plugin_abi.h>

namespace dtask::worker {

inline constexpr std::uint64_t kRunHereMaxNs = 50'000;
inline constexpr std::uint32_t kRunHereAfterQuickRuns = 8;
inline constexpr std::uint32_t kRunHereMaxStrikes = 3;
inline constexpr std::uint32_t kQuickRunsPerPardon = 1024;

// One task function's record.
struct QuickRecord {
  std::uint32_t quick_in_a_row = 0;     // capped at kRunHereAfterQuickRuns
  std::uint32_t strikes = 0;            // overruns on the loop thread not yet forgiven
  std::uint32_t quick_since_strike = 0; // quick runs towards the next pardon
  bool may_run_here() const { return strikes < kRunHereMaxStrikes && quick_in_a_row >= kRunHereAfterQuickRuns; }
};

class QuickRuns {
 public:
  // The records are kept either way; the switch is in may_run_here alone.
  explicit QuickRuns(bool enabled) : enabled_(enabled) {}
  // False for every function when the fast path is switched off.
  bool may_run_here(const dtask_task_v1* fn) const;
  // Every finished run, wherever it ran: counts towards "quick in a row" and pardons.
  void note_run(const dtask_task_v1* fn, std::uint64_t run_ns);
  // A run on the loop thread that kept the loop: an overrun is a strike. Call before note_run.
  void note_loop_run(const dtask_task_v1* fn, std::uint64_t run_ns);
  const QuickRecord* record(const dtask_task_v1* fn) const;
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  std::unordered_map<const dtask_task_v1*, QuickRecord> records_;
};

}  // namespace dtask::worker

// The adapt policy of a job-based cluster (Slurm): from a snapshot of load, workers and jobs, decide what to submit, retire or cancel.
//
// Purpose: Dask's `cluster.adapt(minimum, maximum)` for batch jobs: grow while tasks wait, shrink
//   when workers sit idle, and never flap (dask-jobqueue#122, #498: jobs submitted, cancelled
//   while still pending, submitted again, round and round).
// Inputs: an AdaptSnapshot per step (the caller polls, e.g. once a second): tasks waiting and
//   processing (scheduler_info), every worker with its job, idle time, bytes held and whether it
//   is leaving, and every job the cluster submitted and has not seen end (pending or running,
//   with its submit time; a job is listed from the moment sbatch returned its id). AdaptOptions
//   say the bounds and the pace.
// Action: step() returns an AdaptDecision: submit N jobs, retire these workers (Client::
//   retire_workers: their results are handed over first), cancel these pending jobs. Rules:
//   - target: enough threads for the backlog (tasks / tasks_per_thread), or, when the mean task
//     duration is known and target_duration_ms is set, enough to finish the backlog in that long;
//     in jobs, clamped to [minimum, maximum];
//   - capacity counts pending jobs as well as running ones (a job in the queue is capacity that
//     is coming), minus the jobs this policy already asked to go;
//   - grow: at most max_pending_jobs pending at once, never beyond maximum; not within
//     cooldown_ms of a shrink, unless below the minimum (then at once: a job that ended at
//     walltime is replaced);
//   - shrink: only after the target has stayed below capacity for scale_down_wait_ms, and not
//     within cooldown_ms of a growth; first pending jobs (newest first), then running jobs all
//     of whose workers have been idle for scale_down_wait_ms (idle first, fewest bytes:
//     scheduler::groups_to_close); never below the minimum, and never the last workers that
//     hold results (they would have nowhere to hand them: the job holding most stays).
// Caveats: pure (time is the snapshot's now_ms, no clocks, no I/O); its only state is when it
//   last grew and shrank, since when the target has been below capacity, and which jobs it asked
//   to go (so they are not counted or chosen twice). A running job whose workers have not joined
//   yet is never retired (nothing to retire; its workers may be starting).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dtask::cluster {

struct AdaptJob {
  std::string id;
  bool running = false;           // false: pending in the queue
  std::uint64_t submitted_ms = 0;  // on the snapshot's clock
};

struct AdaptWorker {
  std::string name;
  std::string job;               // the job it runs in (empty: not one of ours, ignored)
  std::size_t processing = 0;
  std::uint64_t nbytes = 0;
  std::uint64_t idle_ms = 0;     // how long it has had nothing to do (0: busy)
  bool retiring = false;         // already leaving
};

struct AdaptSnapshot {
  std::uint64_t now_ms = 0;
  std::size_t tasks_waiting = 0;     // not on a worker yet (queued, waiting for a worker)
  std::size_t tasks_processing = 0;  // on a worker
  std::uint64_t mean_task_ms = 0;    // 0: unknown (then the backlog rule decides)
  std::vector<AdaptWorker> workers;
  std::vector<AdaptJob> jobs;        // submitted and not seen ended
};

struct AdaptOptions {
  enum class Unit : std::uint8_t { jobs, workers };
  Unit unit = Unit::jobs;            // what minimum and maximum count (workers: rounded up to jobs)
  std::size_t minimum = 0;
  std::size_t maximum = 1;
  std::size_t workers_per_job = 1;   // the cluster's `processes`
  std::size_t threads_per_worker = 1;
  double tasks_per_thread = 2.0;     // backlog that justifies a thread (Dask's saturation)
  std::uint64_t target_duration_ms = 0;  // with a known mean task time: finish the backlog in this long
  std::size_t max_pending_jobs = 2;  // HyperQueue's backlog: jobs in the queue at once
  std::uint64_t scale_down_wait_ms = 60'000;  // idle (and in excess) this long before going
  std::uint64_t cooldown_ms = 15'000;         // between a growth and a shrink, either way round

  std::size_t minimum_jobs() const;
  std::size_t maximum_jobs() const;
};

struct AdaptDecision {
  std::size_t submit_jobs = 0;
  std::vector<std::string> retire_workers;  // Client::retire_workers
  std::vector<std::string> cancel_jobs;     // pending jobs to scancel
  std::string why;                          // one line for the log
  bool empty() const { return submit_jobs == 0 && retire_workers.empty() && cancel_jobs.empty(); }
};

class AdaptPolicy {
 public:
  explicit AdaptPolicy(AdaptOptions options);

  // One step: what to do now. Call it with the jobs submitted since the last step already listed.
  AdaptDecision step(const AdaptSnapshot& s);
  // The number of jobs the load calls for, clamped to [minimum, maximum] (no hysteresis).
  std::size_t target_jobs(const AdaptSnapshot& s) const;
  const AdaptOptions& options() const { return opt_; }

 private:
  AdaptOptions opt_;
  std::optional<std::uint64_t> last_grow_ms_;
  std::optional<std::uint64_t> last_shrink_ms_;
  std::optional<std::uint64_t> excess_since_ms_;  // target below capacity since
  std::set<std::string> closing_jobs_;            // retired or cancelled by us, still listed
};

}  // namespace dtask::cluster

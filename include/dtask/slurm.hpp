// dtask::slurm::Cluster: dask-jobqueue's SLURMCluster — a scheduler here, workers in Slurm jobs it submits, scales and cancels.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <dtask/memory.hpp>
#include <dtask/types.hpp>

namespace dtask::slurm {

// The seed's words (dask_jobqueue.SLURMCluster). One job runs `processes` workers; each worker
// gets cores/processes threads and memory/processes bytes.
struct ClusterOptions {
  int cores = 1;                // --cpus-per-task of each job
  int processes = 1;            // workers per job (dtask-worker --nworkers)
  std::string memory;           // per job, e.g. "24GB"; empty: no --mem, each worker's limit is dtask-worker's auto (the node's memory / processes)
  MemoryThresholds memory_thresholds;  // fractions of each worker's limit: spill, pause, terminate (dtask/memory.hpp)
  std::string account;          // -A
  std::string queue;            // -p (partition)
  std::string walltime = "00:30:00";  // -t
  std::string job_name = "dtask-worker";  // -J
  std::vector<std::string> job_extra_directives;  // extra `#SBATCH` lines, e.g. "--qos=debug"
  std::vector<std::string> job_directives_skip;   // a generated directive containing one of these is left out
  std::vector<std::string> job_script_prologue;   // lines before the workers start, e.g. "module load gcc"
  std::string interface;        // the workers' network interface (e.g. hsn0)
  std::string local_directory;  // the workers' spill directories go under it (default $TMPDIR, else /tmp); may use shell variables ($TMPDIR)
  std::string log_directory;    // logs in <log_directory>/<cluster id>/, kept; default <shared_directory>/<cluster id>/logs
  std::string plugin;           // the task plugin (.so), at a path the compute nodes see
  std::vector<std::string> worker_extra_args;  // appended to the dtask-worker line
  // The worker executable in the script; default: DTASK_WORKER_EXE, dtask-worker beside this
  // program, or the installed one (an absolute path: compute nodes need not share our PATH).
  std::string worker_executable;

  // The scheduler (in this process).
  std::string scheduler_host;       // address to bind; empty: the IPv4 address of this host's name
  std::string scheduler_interface;  // wins over scheduler_host (e.g. the login node's hsn0)
  std::string dashboard_address;    // the dashboard: "" / ":8787" (next free port if taken), ":0", "HOST:PORT", "none"
  std::string report;               // written when the cluster closes: the whole run as one HTML page; empty: none
  std::uint32_t allowed_failures = 3;
  FastPaths fast_paths = FastPaths::from_environment();
  std::string log_level = "warn";   // this process and the workers

  // Where the scheduler file (with the CURVE keys, 0600), the state file (job ids, 0600) and the
  // default log directory live. Must be visible on the compute nodes.
  // Default: $HOME/.dtask/clusters.
  std::string shared_directory;

  // Slurm's commands; override for site wrappers or tests.
  std::string sbatch = "sbatch";
  std::string squeue = "squeue";
  std::string scancel = "scancel";
  std::string sacct = "sacct";
  std::chrono::milliseconds command_timeout{30000};  // one Slurm command (slurmctld may be slow)
  bool dry_run = true;  // `sbatch --test-only` at creation: Slurm's own message if it would refuse

  std::chrono::milliseconds poll_interval{2000};  // one batched squeue per interval
  int max_pending_jobs = 8;  // never more jobs than this waiting in the queue at once
  int max_jobs = 0;          // jobs alive at once (0: no cap)
  std::chrono::milliseconds close_timeout{60000};  // close() waits this long for squeue to forget our jobs
};

// The pace of adapt() (Dask's adapt keywords; the bounds are adapt()'s arguments).
struct AdaptSettings {
  double tasks_per_thread = 2.0;  // backlog that justifies one more worker thread
  // With a known mean task time: enough workers to finish the backlog in this long (0: off).
  std::chrono::milliseconds target_duration{0};
  std::chrono::milliseconds scale_down_wait{60000};  // idle and in excess this long before going
  std::chrono::milliseconds cooldown{15000};         // between a growth and a shrink
};

// One submitted job as the cluster last saw it.
struct JobInfo {
  std::string id;
  std::string state;   // Slurm's: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
  std::string reason;  // while PENDING, Slurm's reason (Priority, Resources, QOSMaxJobsPerUserLimit, ...)
  std::string log_file;
  int workers_joined = 0;  // of this job's workers, how many have registered so far (ever)
  bool ended = false;
  bool retired = false;    // scale-down or adapt asked its workers to hand over and leave
};

// A job that ended before any of its workers joined (bad plugin path, wrong module, node failure):
// the message names the job, its state and its log file.
class JobFailedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Slurm refused (sbatch --test-only or sbatch): the message is Slurm's.
class SlurmError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Cluster {
 public:
  // Starts the scheduler, writes the scheduler file and state file, runs `sbatch --test-only`
  // (throws SlurmError with Slurm's message) and the poll thread. Submits nothing yet.
  explicit Cluster(ClusterOptions options);
  // close(): every job cancelled, files and keys removed. Also while unwinding from an exception.
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Exactly what sbatch receives.
  std::string job_script() const;
  // Dask's scale(jobs=N) / scale(N workers) (rounded up to whole jobs). Submits or cancels at once
  // (bounded by max_pending_jobs/max_jobs; the rest follows as the poll thread sees room) and keeps
  // the count there: jobs that end (walltime) are replaced. Clears a stop set by a failed job.
  void scale_jobs(int n);
  void scale_workers(int n);
  // Dask's adapt(minimum_jobs=, maximum_jobs=): from now on the poll thread sizes the cluster to
  // the load (src/cluster/adapt.hpp has the rules). It grows while tasks wait, with at most
  // max_pending_jobs in the queue at once. It shrinks once workers have sat idle for
  // `scale_down_wait`: pending jobs are cancelled first, then whole jobs whose workers are all
  // idle are retired (their results handed over first) and cancelled. It never grows and shrinks
  // within `cooldown` of each other, and it replaces jobs that end below the minimum at once.
  // scale_jobs()/scale_workers() end adaptive mode.
  void adapt(int minimum_jobs, int maximum_jobs, const AdaptSettings& settings = {});

  // Until n workers of this cluster's jobs have joined: true; false at the timeout; throws
  // JobFailedError as soon as a job ended before its workers joined.
  bool wait_for_workers(int n, std::chrono::milliseconds timeout);
  std::vector<JobInfo> jobs() const;
  // The failures so far (JobFailedError's messages), oldest first.
  std::vector<std::string> failures() const;

  const std::string& id() const;                 // the cluster's name in shared_directory
  const std::string& scheduler_file() const;
  // The dashboard's URL with its access token (Dask's dashboard_link); empty with "none".
  const std::string& dashboard_link() const;
  const std::string& scheduler_address() const;
  ConnectOptions connect_options() const;        // what Client(cluster) connects with
  const ClusterOptions& options() const;

  // Stops the scheduler, scancels every job, waits (close_timeout) until squeue lists none, removes
  // the scheduler file, state file and keys (the logs stay if a job failed). Idempotent, thread-safe.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Opt-in: SIGINT/SIGTERM close every live Cluster (jobs cancelled, files removed), then the signal
// is re-raised with its default action, so the program still dies of it. Call once, early in main.
void close_clusters_on_signals();

}  // namespace dtask::slurm

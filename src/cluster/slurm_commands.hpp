// Slurm driven through its commands (sbatch, squeue, scancel, sacct): running them, and parsing what they print.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dtask::slurm {

// One finished command. Never throws: a command that cannot start or overstays is reported here.
struct CommandResult {
  int exit_code = -1;      // -1: did not start, was killed, or timed out
  bool timed_out = false;
  std::string out, err;    // stdout and stderr, whole
  std::string spawn_error; // why it could not start
  bool ok() const { return exit_code == 0; }
  // Slurm's own words for a failure: stderr (else stdout, else what went wrong), trimmed.
  std::string message() const;
};

// posix_spawnp(argv[0]) with stdin fed from `input`, stdout/stderr captured; SIGKILL after `timeout`.
// Thread-safe; called from the caller's thread and the cluster's poll thread.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout);

// --- Pure parsing, unit-tested on recorded output ---

// `sbatch --parsable` prints "<id>" or "<id>;<cluster>"; nullopt if it is not that.
std::optional<std::string> parse_sbatch_id(const std::string& out);

struct QueueEntry {
  std::string state;   // RUNNING, PENDING, COMPLETING, ...
  std::string reason;  // Slurm's %r; "None" while running
};
// `squeue -h -o '%i %T %r'`: one job a line. Lines it cannot read are skipped.
std::map<std::string, QueueEntry> parse_squeue(const std::string& out);

// `sacct -n -P -X -o JobID,State`: "123|FAILED", "124|CANCELLED by 0". The first word of State.
std::map<std::string, std::string> parse_sacct(const std::string& out);

// A state in which a job is over (it will never run a worker again).
bool is_final_state(const std::string& state);

// scancel `ids`, then poll squeue every `step` until none of them is listed alive (gone, or in a
// final state); false if some still are at `timeout` (a failed squeue counts as still listed).
// What slurm::Cluster::close() and `dtask-cluster cancel` both do: no orphaned jobs.
struct CancelResult {
  bool gone = false;
  std::string scancel_error;  // scancel's message if it failed (the wait still runs)
};
CancelResult cancel_and_wait(const std::string& scancel, const std::string& squeue, const std::vector<std::string>& ids,
                             std::chrono::milliseconds timeout, std::chrono::milliseconds step,
                             std::chrono::milliseconds command_timeout);
// Final and not a normal end: FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, ...
bool is_failure_state(const std::string& state);

// --- The command lines (argv), so tests can read them ---
std::vector<std::string> sbatch_argv(const std::string& sbatch, bool test_only);  // script on stdin
std::vector<std::string> squeue_argv(const std::string& squeue, const std::vector<std::string>& ids);
std::vector<std::string> sacct_argv(const std::string& sacct, const std::vector<std::string>& ids);
std::vector<std::string> scancel_argv(const std::string& scancel, const std::vector<std::string>& ids);

// --- The calls ---
// Submits the script; the job id, or SlurmError's text in `error`.
struct Submitted {
  std::string id;
  std::string error;
  bool ok() const { return error.empty(); }
};
Submitted sbatch_submit(const std::string& sbatch, const std::string& script, std::chrono::milliseconds timeout);
// The dry run: empty when Slurm would accept the script, else Slurm's message.
std::string sbatch_test_only(const std::string& sbatch, const std::string& script, std::chrono::milliseconds timeout);

}  // namespace dtask::slurm

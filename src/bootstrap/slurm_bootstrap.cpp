// The runner without MPI (`srun --mpi=none -n N dtask-run --bootstrap slurm`): ranks from Slurm, card by file.
//
// Like the MPI runner, each srun task forks its role process (roles.cpp) and supervises it; only
// the rendezvous differs. Rank 0's scheduler writes its scheduler file (address + CURVE keys,
// 0600, temp + rename: common/scheduler_file.cpp) at the card path; every other rank polls for
// that file, bounded by --wait-timeout, and hands it to its role process. There is no "all
// ranks ok" vote: a rank that cannot take part ends the job itself instead:
//   - rank 0 (no scheduler) leaves an end notice (<card>.ended: code 1 and its reason);
//   - any other rank connects with the card and asks the scheduler to shut the job down (1).
// The exit code needs no exchange: the client's code travels in the scheduler's shutdown
// (ShutdownCluster -> WorkerShutdown), and every role process ends with it; this task exits
// with its role process's code. A dead scheduler or client ends the job through the heartbeat
// rules, as under MPI. Only a task that never reached the scheduler cannot learn the code that
// way: a job that ends non-zero leaves the end notice for kLinger (then removes it), so a task
// still waiting for the card, or whose role process is still connecting when the card goes
// (watch_child), leaves with the job's code. A job that ends 0 does not wait: every task took
// part (the client waits for all workers unless --wait-for-workers says fewer).
// Threads: one (this process only forks, polls files and waits).
#include "bootstrap/slurm_bootstrap.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include <dtask/client.hpp>

#include "bootstrap/business_card.hpp"
#include "bootstrap/roles.hpp"
#include "common/atomic_file.hpp"
#include "common/scheduler_file.hpp"
#include "transport/transport.hpp"

namespace dtask::bootstrap {

namespace {

// A whole non-negative number, or -1.
int parse_count(const char* s) {
  if (!s || !*s) return -1;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0 || v > 1000000000L) return -1;
  return static_cast<int>(v);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// How long task 0 keeps the end notice: the others look at least once a second.
constexpr auto kLinger = std::chrono::seconds(5);

std::string ended_path(const std::string& card) { return card + ".ended"; }

// The job is over with `code` (and, if it never started, why): the same 0600 + rename as the card.
void write_end_notice(const std::string& card, int code, const std::string& why) {
  // Best effort: without it the other ranks still end, at their timeout.
  write_file_atomically(ended_path(card), std::to_string(code) + "\n" + why + "\n", 0600);
}

struct EndNotice {
  bool found = false;
  int code = 1;
  std::string why;  // empty: the job ran and ended with `code`
};
EndNotice read_end_notice(const std::string& card) {
  EndNotice n;
  std::ifstream f(ended_path(card));
  if (!f) return n;
  std::string line;
  if (!std::getline(f, line)) return n;
  const int code = parse_count(line.c_str());
  n.found = true;
  n.code = code > 0 && code < 256 ? code : 1;
  std::getline(f, n.why);
  return n;
}

// Task 0 keeps the notice for the others, then leaves nothing behind; a signal (scancel) cuts it short.
void linger_then_remove(const std::string& card) {
  const auto until = std::chrono::steady_clock::now() + kLinger;
  while (std::chrono::steady_clock::now() < until && last_signal() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::unlink(ended_path(card).c_str());
}

enum class Wait { card, ended, timed_out, signalled };

// Polls for the card (or rank 0's failure notice) with a growing interval, at most 1 s apart:
// a few hundred stat calls per rank on the shared filesystem over a two-minute wait.
Wait wait_for_card(const std::string& card, std::chrono::seconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  auto pause = std::chrono::milliseconds(50);
  while (true) {
    if (last_signal() != 0) return Wait::signalled;
    if (exists(card)) return Wait::card;
    if (exists(ended_path(card))) return Wait::ended;
    if (std::chrono::steady_clock::now() >= deadline) return Wait::timed_out;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
}

// Waits for the role process of a task other than 0 and returns its code. The card also says
// the job is alive: the scheduler removes it when it ends, after telling every peer it knew. A
// role process still running a grace later never reached the scheduler (a worker that missed
// --wait-for-workers, a client still connecting when a failed rank ended the job): it is stopped,
// as the MPI runner stops its stragglers, and this task exits with the code of task 0's end
// notice, 1 without one.
int watch_child(pid_t child, const std::string& card, std::chrono::milliseconds grace) {
  using clock = std::chrono::steady_clock;
  auto next_look = clock::now() + std::chrono::seconds(1);
  std::optional<clock::time_point> gone_at;
  bool termed = false, killed = false;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(child, &status, WNOHANG);
    if (r == child) {
      if (gone_at && termed) return read_end_notice(card).code;
      // A worker told to stop by this task's own SIGTERM may drain and leave with 0; under
      // scancel or walltime the job is being stopped, and the task says so like the others.
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && last_signal() != 0) return 128 + last_signal();
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return 1;
    }
    if (r < 0 && errno != EINTR) return 1;
    const auto now = clock::now();
    if (!gone_at && now >= next_look) {
      next_look = now + std::chrono::seconds(1);
      struct stat st {};
      // Only "no such file" counts: a shared filesystem's passing hiccup (ESTALE, EIO) does not.
      if (::stat(card.c_str(), &st) != 0 && errno == ENOENT) gone_at = now;
    }
    if (gone_at && !termed && now - *gone_at > grace) {
      ::kill(child, SIGTERM);
      termed = true;
    }
    if (gone_at && termed && !killed && now - *gone_at > grace + std::chrono::seconds(5)) {
      ::kill(child, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

BusinessCard card_from(const SchedulerFile& f) {
  BusinessCard c{};
  copy_field(c.magic, sizeof c.magic, "dtask1");
  copy_field(c.endpoint, sizeof c.endpoint, f.connect.address);
  copy_field(c.server_public, sizeof c.server_public, f.connect.security.server_public);
  copy_field(c.server_secret, sizeof c.server_secret, f.connect.security.server_secret);
  copy_field(c.client_public, sizeof c.client_public, f.connect.security.client_public);
  copy_field(c.client_secret, sizeof c.client_secret, f.connect.security.client_secret);
  copy_field(c.job_id, sizeof c.job_id, f.job_id);
  return c;
}

// A rank that cannot take part (no interface, no plugin) ends the job, as the MPI runner's vote
// would: every rank then leaves with 1 instead of the client waiting out --wait-timeout.
void end_job(const std::string& path, const SchedulerFile& card, int rank, const mpi::RunOptions& options) {
  if (!exists(path)) return;  // another failing task was first: the scheduler is gone already
  try {
    ConnectOptions co = card.connect;
    co.name = "rank" + std::to_string(rank) + "-failed-to-start";
    co.connect_timeout = options.heartbeat_timeout * 2;  // a scheduler already gone is not waited for long
    co.scheduler_timeout = options.heartbeat_timeout * 2;
    co.fast_paths = options.fast_paths;
    Client c(co);
    c.shutdown_cluster(1);
    c.close();
  } catch (const std::exception&) {
    // The scheduler is gone already: nothing left to stop.
  }
}

}  // namespace

SlurmTask slurm_task(const std::function<const char*(const char*)>& env, const mpi::RunOptions& options) {
  SlurmTask t;
  const char* procid = env("SLURM_PROCID");
  if (!procid) {
    t.error = "--bootstrap slurm needs SLURM_PROCID: start dtask-run with srun (e.g. srun --mpi=none -n 4 dtask-run "
              "--bootstrap slurm ...), not directly or from the batch script";
    return t;
  }
  t.rank = parse_count(procid);
  if (t.rank < 0) {
    t.error = std::string("SLURM_PROCID='") + procid + "' is not a task number";
    return t;
  }
  const char* ntasks = env("SLURM_NTASKS");
  if (!ntasks) ntasks = env("SLURM_NPROCS");
  t.size = parse_count(ntasks);
  if (t.size < 0) {
    t.error = ntasks ? std::string("SLURM_NTASKS='") + ntasks + "' is not a number of tasks"
                     : std::string("--bootstrap slurm needs SLURM_NTASKS (set by srun)");
    return t;
  }
  if (t.rank >= t.size) {
    t.error = "SLURM_PROCID " + std::to_string(t.rank) + " is not below SLURM_NTASKS " + std::to_string(t.size);
    return t;
  }
  if (!options.scheduler_file.empty()) {
    t.card_path = options.scheduler_file;
    return t;
  }
  const char* job = env("SLURM_JOB_ID");
  if (!job || !*job) job = env("SLURM_JOBID");
  if (!job || !*job) {
    t.error = "--bootstrap slurm needs SLURM_JOB_ID (set by srun) to name the job's card file, or --scheduler-file";
    return t;
  }
  const char* step = env("SLURM_STEP_ID");
  if (!step || !*step) step = env("SLURM_STEPID");
  std::string dir = options.shared_directory;
  if (dir.empty()) {
    const char* submit = env("SLURM_SUBMIT_DIR");
    const char* home = env("HOME");
    dir = submit && *submit ? submit : (home && *home ? home : "");
  }
  if (dir.empty()) {
    t.error = "--bootstrap slurm: no directory for the card file (neither SLURM_SUBMIT_DIR nor HOME is set): give "
              "--shared-directory or --scheduler-file";
    return t;
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  t.card_path = dir + "/dtask-run-" + job + "." + (step && *step ? step : "0") + ".json";
  return t;
}

int run_slurm(const mpi::RunOptions& options, const std::function<int(Client&)>& client_main) {
  const SlurmTask task = slurm_task([](const char* v) { return std::getenv(v); }, options);
  if (!task.ok()) {
    // Printed once per job when the rank is known, by every task when it is not.
    if (task.rank <= 0) std::fprintf(stderr, "dtask-run: %s\n", task.error.c_str());
    return 2;
  }
  const int rank = task.rank, size = task.size;
  const int needed = options.no_client ? 2 : 3;
  if (size < needed) {
    if (rank == 0) {
      std::fprintf(stderr,
                   "dtask: needs at least %d Slurm tasks (task 0 scheduler, %s), got %d: run srun with -n %d or more\n",
                   needed, options.no_client ? "the others workers" : "task 1 client, the others workers", size,
                   needed);
    }
    return 2;
  }
  const std::string& card = task.card_path;
  if (rank == 0) {
    // A card left by a killed run of the same job step would mislead the others: gone before
    // they look (they start polling at once, but cannot have read a card of this run yet).
    ::unlink(card.c_str());
    ::unlink(ended_path(card).c_str());
    // A --shared-directory that does not exist yet is made (private: the card holds the keys).
    if (!options.shared_directory.empty() && ::mkdir(options.shared_directory.c_str(), 0700) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "dtask: cannot create --shared-directory %s: %s\n", options.shared_directory.c_str(),
                   std::strerror(errno));
    }
  }

  mpi::RunOptions role_options = options;
  role_options.scheduler_file = rank == 0 ? card : std::string();
  auto role = start_role(role_options, client_main);
  if (role.pid < 0) return 1;
  const pid_t child = role.pid;

  auto stop_child = [&] {
    GoInfo no{};
    no.go = 0;
    write_all(role.to_child, &no, sizeof no);
    wait_role(child);
  };

  StartInfo si{rank, size};
  write_all(role.to_child, &si, sizeof si);
  ChildReport report{};
  if (!read_all(role.from_child, &report, sizeof report)) {
    report.ok = 0;
    copy_field(report.message, sizeof report.message, "the role process died during startup");
  }
  const std::string host = transport::hostname();

  if (rank == 0) {
    if (!report.ok) {
      std::fprintf(stderr, "dtask: task 0 (the scheduler) on %s: %s\n", host.c_str(), report.message);
      write_end_notice(card, 1, std::string("task 0 (the scheduler) on ") + host + ": " + report.message);
      stop_child();
      linger_then_remove(card);
      return 1;
    }
    GoInfo go{};
    go.go = 1;
    go.card = report.card;
    write_all(role.to_child, &go, sizeof go);
    int code = wait_role(child);
    if (code != 0) write_end_notice(card, code, "");
    ::unlink(card.c_str());  // the scheduler removes it; not if it was killed
    if (code != 0) linger_then_remove(card);
    return code;
  }

  // This task's own reason to fail comes first, whatever the others did meanwhile.
  if (!report.ok) std::fprintf(stderr, "dtask: task %d on %s: %s\n", rank, host.c_str(), report.message);
  switch (wait_for_card(card, options.wait_timeout)) {
    case Wait::card:
      break;
    case Wait::ended: {
      // Task 0 printed its reason; one line here says why this task stops too.
      EndNotice n = read_end_notice(card);
      if (!report.ok) {
        // said above
      } else if (!n.why.empty()) {
        std::fprintf(stderr, "dtask: task %d on %s stops: %s\n", rank, host.c_str(), n.why.c_str());
      } else {
        std::fprintf(stderr, "dtask: task %d on %s: the job ended (code %d) before this task found it\n", rank,
                     host.c_str(), n.code);
      }
      stop_child();
      return n.code;
    }
    case Wait::timed_out:
      std::fprintf(stderr,
                   "dtask: task %d on %s: no business card at %s after %lld s: task 0 (the scheduler) did not start, "
                   "or that directory is not shared by every node (pick one with --shared-directory or "
                   "--scheduler-file)\n",
                   rank, host.c_str(), card.c_str(), static_cast<long long>(options.wait_timeout.count()));
      stop_child();
      return 1;
    case Wait::signalled:
      stop_child();
      return 128 + last_signal();
  }
  SchedulerFile sf = read_scheduler_file(card);
  if (!sf.ok()) {
    std::fprintf(stderr, "dtask: task %d on %s: %s\n", rank, host.c_str(), sf.error.c_str());
    stop_child();
    return 1;
  }
  if (!report.ok) {
    stop_child();
    end_job(card, sf, rank, options);
    return 1;
  }
  GoInfo go{};
  go.go = 1;
  go.card = card_from(sf);
  write_all(role.to_child, &go, sizeof go);
  // A role process that did reach the scheduler ends on its own within this: told to stop before the
  // card went, or, if the scheduler died silently, after its own 2x heartbeat timeout.
  int code = watch_child(child, card, options.heartbeat_timeout * 2 + std::chrono::seconds(5));
  role_reaped();
  return code;
}

}  // namespace dtask::bootstrap

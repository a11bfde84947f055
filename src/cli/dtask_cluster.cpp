// `dtask-cluster`: lists the slurm::Clusters recorded in the state directory and cancels the jobs of one whose program died (kill -9).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <CLI/CLI.hpp>

#include "cluster/slurm_commands.hpp"
#include "cluster/state_file.hpp"
#include "common/host.hpp"

namespace fs = std::filesystem;
using namespace dtask::slurm;

namespace {

struct Found {
  fs::path dir;
  StateFile state;
};

std::vector<Found> find_clusters(const std::string& directory) {
  std::vector<Found> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    auto path = entry.path() / "state.json";
    if (!fs::exists(path)) continue;
    auto r = read_state_file(path.string());
    if (!r.ok()) {
      std::fprintf(stderr, "dtask-cluster: %s\n", r.error.c_str());
      continue;
    }
    out.push_back({entry.path(), r.state});
  }
  return out;
}

// "running", "gone", or "unknown" (another host: we cannot look).
std::string owner_status(const StateFile& s) {
  if (s.host != dtask::hostname()) return "unknown (on " + s.host + ")";
  if (s.pid > 0 && (::kill(static_cast<pid_t>(s.pid), 0) == 0 || errno == EPERM)) return "running";
  return "gone";
}

int list(const std::string& directory, const std::string& squeue_override) {
  auto clusters = find_clusters(directory);
  if (clusters.empty()) {
    std::printf("no clusters in %s\n", directory.c_str());
    return 0;
  }
  for (const auto& c : clusters) {
    std::printf("%s  host %s  pid %ld  program %s  logs %s\n", c.state.id.c_str(), c.state.host.c_str(), c.state.pid,
                owner_status(c.state).c_str(), c.state.log_directory.c_str());
    if (c.state.jobs.empty()) {
      std::printf("  no jobs\n");
      continue;
    }
    // One batched squeue per cluster.
    const std::string& squeue = squeue_override.empty() ? c.state.squeue : squeue_override;
    auto r = run_command(squeue_argv(squeue, c.state.jobs), "", std::chrono::seconds(30));
    auto listed = r.ok() ? parse_squeue(r.out) : std::map<std::string, QueueEntry>{};
    for (const auto& id : c.state.jobs) {
      auto it = listed.find(id);
      if (!r.ok()) std::printf("  %s  (squeue failed: %s)\n", id.c_str(), r.message().c_str());
      else if (it == listed.end()) std::printf("  %s  not in the queue\n", id.c_str());
      else if (it->second.state == "PENDING") std::printf("  %s  PENDING (%s)\n", id.c_str(), it->second.reason.c_str());
      else std::printf("  %s  %s\n", id.c_str(), it->second.state.c_str());
    }
  }
  return 0;
}

// scancel, wait (bounded) until squeue no longer lists the jobs, then remove the scheduler file
// (the keys) and the state file. The logs stay: they are why one looks after a crash.
bool cancel_one(const Found& c, const std::string& scancel_override, const std::string& squeue_override,
                std::chrono::seconds timeout) {
  const std::string& scancel = scancel_override.empty() ? c.state.scancel : scancel_override;
  const std::string& squeue = squeue_override.empty() ? c.state.squeue : squeue_override;
  if (!c.state.jobs.empty()) {
    auto r = cancel_and_wait(scancel, squeue, c.state.jobs, timeout, std::chrono::milliseconds(500),
                             std::chrono::seconds(30));
    if (!r.scancel_error.empty())
      std::fprintf(stderr, "dtask-cluster: scancel for %s: %s\n", c.state.id.c_str(), r.scancel_error.c_str());
    if (!r.gone) {
      std::fprintf(stderr, "dtask-cluster: jobs of %s still listed after %lld s; run again\n", c.state.id.c_str(),
                   static_cast<long long>(timeout.count()));
      return false;
    }
  }
  std::error_code ec;
  if (!c.state.scheduler_file.empty()) fs::remove(c.state.scheduler_file, ec);
  fs::remove(c.dir / "scheduler.json", ec);
  fs::remove(c.dir / "state.json", ec);
  if (fs::is_empty(c.dir, ec)) fs::remove(c.dir, ec);
  std::printf("%s: cancelled %zu job(s); logs in %s\n", c.state.id.c_str(), c.state.jobs.size(),
              c.state.log_directory.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dtask-cluster: the Slurm clusters (dtask::slurm::Cluster) recorded in a state directory"};
  std::string directory = default_shared_directory(), scancel, squeue;
  app.add_option("--directory", directory, "the clusters' shared_directory")->capture_default_str();
  app.add_option("--squeue", squeue, "squeue to use (default: the one the cluster recorded)");
  app.add_option("--scancel", scancel, "scancel to use (default: the one the cluster recorded)");
  app.require_subcommand(1);
  app.fallthrough();  // `dtask-cluster list --directory D` works as well as `dtask-cluster --directory D list`
  auto* list_cmd = app.add_subcommand("list", "clusters, their programs and their jobs' states");
  auto* cancel_cmd = app.add_subcommand("cancel", "cancel a cluster's jobs and remove its files and keys");
  std::vector<std::string> ids;
  bool all = false, force = false;
  int timeout_s = 60;
  cancel_cmd->add_option("ids", ids, "cluster ids (from `dtask-cluster list`)");
  cancel_cmd->add_flag("--all", all, "every cluster whose program is gone");
  cancel_cmd->add_flag("--force", force, "also clusters whose program still runs (or runs on another host)");
  cancel_cmd->add_option("--timeout", timeout_s, "seconds to wait for Slurm to forget the jobs")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (list_cmd->parsed()) return list(directory, squeue);
  if (ids.empty() && !all) {
    std::fprintf(stderr, "dtask-cluster cancel: give cluster ids or --all\n");
    return 2;
  }
  int code = 0;
  int matched = 0;
  for (const auto& c : find_clusters(directory)) {
    bool named = std::find(ids.begin(), ids.end(), c.state.id) != ids.end();
    if (!named && !all) continue;
    ++matched;
    if (owner_status(c.state) != "gone" && !force) {
      std::fprintf(stderr, "dtask-cluster: %s: its program is %s; not cancelling without --force\n", c.state.id.c_str(),
                   owner_status(c.state).c_str());
      if (named) code = 1;
      continue;
    }
    if (!cancel_one(c, scancel, squeue, std::chrono::seconds(timeout_s))) code = 1;
  }
  if (!ids.empty() && matched < static_cast<int>(ids.size())) {
    std::fprintf(stderr, "dtask-cluster: not every id was found in %s\n", directory.c_str());
    code = 1;
  }
  return code;
}

// A slurm::Cluster's state file: which jobs it submitted, so `dtask-cluster cancel` can clean up after a kill -9.
#pragma once

#include <string>
#include <vector>

namespace dtask::slurm {

// <shared_directory>/<id>/state.json, mode 0600, rewritten atomically after every submit.
struct StateFile {
  std::string id;
  std::string host;             // where the owning program runs
  long pid = 0;                 // the owning program
  std::string scheduler_file;
  std::string log_directory;
  std::string squeue = "squeue", scancel = "scancel";  // the commands the cluster used
  std::vector<std::string> jobs;  // every job it submitted and has not seen end
};

void write_state_file(const std::string& path, const StateFile& state);  // throws std::runtime_error
// Empty `error` on success.
struct StateRead {
  StateFile state;
  std::string error;
  bool ok() const { return error.empty(); }
};
StateRead read_state_file(const std::string& path);

// $HOME/.dtask/clusters (or /tmp/dtask-clusters-<uid> without HOME).
std::string default_shared_directory();

}  // namespace dtask::slurm

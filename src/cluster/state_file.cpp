// A slurm::Cluster's state file (job ids, owner, commands), written 0600 and atomically.
#include "cluster/state_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"

namespace dtask::slurm {

void write_state_file(const std::string& path, const StateFile& s) {
  nlohmann::json j = {{"id", s.id},         {"host", s.host},       {"pid", s.pid},
                      {"scheduler_file", s.scheduler_file},         {"log_directory", s.log_directory},
                      {"squeue", s.squeue}, {"scancel", s.scancel}, {"jobs", s.jobs}};
  std::string text = j.dump(2) + "\n";
  if (auto why = write_file_atomically(path, text, 0600); !why.empty()) {
    throw std::runtime_error("cannot write state file " + path + ": " + why);
  }
}

StateRead read_state_file(const std::string& path) {
  StateRead r;
  std::ifstream f(path);
  if (!f) {
    r.error = "cannot read state file " + path;
    return r;
  }
  try {
    auto j = nlohmann::json::parse(f);
    r.state.id = j.at("id").get<std::string>();
    r.state.host = j.value("host", "");
    r.state.pid = j.value("pid", 0L);
    r.state.scheduler_file = j.value("scheduler_file", "");
    r.state.log_directory = j.value("log_directory", "");
    r.state.squeue = j.value("squeue", "squeue");
    r.state.scancel = j.value("scancel", "scancel");
    r.state.jobs = j.at("jobs").get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    r.error = "state file " + path + " is not readable: " + e.what();
  }
  return r;
}

std::string default_shared_directory() {
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.dtask/clusters";
  return "/tmp/dtask-clusters-" + std::to_string(::getuid());
}

}  // namespace dtask::slurm

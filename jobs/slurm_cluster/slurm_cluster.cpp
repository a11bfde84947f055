// The seed's dask_slurm_example.py in C++: a slurm::Cluster of 2 jobs from the login node, 2,000 submits counted per host.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include <dtask/dtask.hpp>
#include <dtask/slurm.hpp>

std::string host_name();  // jobs/hostnames/hostname_tasks.cpp (the plugin the workers load)

namespace {
// --name value pairs; anything else is an error.
bool parse(int argc, char** argv, dtask::slurm::ClusterOptions& o, int& jobs, int& n) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--plugin") o.plugin = v;
    else if (k == "--account") o.account = v;
    else if (k == "--queue") o.queue = v;
    else if (k == "--cores") o.cores = std::stoi(v);
    else if (k == "--processes") o.processes = std::stoi(v);
    else if (k == "--memory") o.memory = v;
    else if (k == "--walltime") o.walltime = v;
    else if (k == "--interface") o.interface = v;
    else if (k == "--scheduler-interface") o.scheduler_interface = v;
    else if (k == "--shared-directory") o.shared_directory = v;
    else if (k == "--worker-executable") o.worker_executable = v;
    else if (k == "--prologue") o.job_script_prologue.push_back(v);
    else if (k == "--jobs") jobs = std::stoi(v);
    else if (k == "--submits") n = std::stoi(v);
    else return false;
  }
  return argc % 2 == 1;
}
}  // namespace

int main(int argc, char** argv) {
  dtask::slurm::close_clusters_on_signals();  // Ctrl-C / scancel of this program: jobs cancelled first
  dtask::slurm::ClusterOptions o;
  o.cores = 2;
  o.processes = 2;
  o.memory = "1GB";
  o.walltime = "00:10:00";
  int jobs = 2, n = 2000;
  if (!parse(argc, argv, o, jobs, n) || o.plugin.empty()) {
    std::fprintf(stderr,
                 "usage: slurm_cluster --plugin /shared/libhostname_tasks.so [--account A] [--queue P] [--cores C]\n"
                 "  [--processes N] [--memory 24GB] [--walltime 00:30:00] [--interface hsn0]\n"
                 "  [--scheduler-interface IF] [--shared-directory DIR] [--worker-executable PATH]\n"
                 "  [--prologue LINE] [--jobs 2] [--submits 2000]\n");
    return 2;
  }
  try {
    dtask::slurm::Cluster cluster(o);
    dtask::Client client(cluster);
    cluster.scale_jobs(jobs);
    // Not required (submit would wait), but a job that cannot start is then an error, not a hang.
    if (!cluster.wait_for_workers(jobs * o.processes, std::chrono::minutes(10))) {
      std::fprintf(stderr, "slurm_cluster: the workers did not all join within 10 minutes\n");
      return 1;
    }
    std::map<std::string, int> counter;
    for (int i = 0; i < n; ++i) ++counter[client.submit(host_name).result()];
    for (const auto& [host, count] : counter) std::printf("%s: %d tasks\n", host.c_str(), count);
    std::printf("%s", cluster.job_script().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slurm_cluster: %s\n", e.what());
    return 1;
  }
}

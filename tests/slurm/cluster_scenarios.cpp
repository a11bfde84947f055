// slurm::Cluster scenarios for the real two-node Slurm (tests/slurm/cluster_object.sh): scale-down, adapt, --lifetime, a throwing program.
//
// Usage: cluster_scenarios MODE --plugin libtest_tasks.so [cluster options as jobs/slurm_cluster]
//   scale-down  2 jobs, 200 results held, scale to 1: the job that goes is retired, every result
//               reads back as computed (the value is the computing process's pid: a recomputed one
//               would differ)
//   adapt       adapt(0, 4): 200 tasks of 50 ms; jobs come, never more than 4; once the results are
//               released and the workers idle, every job goes
//   lifetime    2 jobs whose workers have --lifetime 10s: work for ~35 s while results are held;
//               the workers retire, the jobs are replaced, every held result survives
//   throw       2 jobs, then the program throws: the destructor cancels them on the way out
// Prints one line per fact the script checks; exits 0 when the scenario held, 1 with the reason.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dtask/dtask.hpp>
#include <dtask/slurm.hpp>

#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

bool parse(int argc, char** argv, dtask::slurm::ClusterOptions& o) {
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--plugin") o.plugin = v;
    else if (k == "--cores") o.cores = std::stoi(v);
    else if (k == "--processes") o.processes = std::stoi(v);
    else if (k == "--memory") o.memory = v;
    else if (k == "--walltime") o.walltime = v;
    else if (k == "--interface") o.interface = v;
    else if (k == "--scheduler-interface") o.scheduler_interface = v;
    else if (k == "--shared-directory") o.shared_directory = v;
    else if (k == "--worker-executable") o.worker_executable = v;
    else return false;
  }
  return argc % 2 == 0;
}

int alive_jobs(const dtask::slurm::Cluster& c) {
  int n = 0;
  for (const auto& j : c.jobs()) n += j.ended ? 0 : 1;
  return n;
}

// Polls `pred` every 200 ms for up to `limit`.
template <class Pred>
bool within(std::chrono::seconds limit, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// The held results still read as they were computed: through a task on a worker (the value
// travels from wherever it now lives) and through the futures themselves.
void same_results(dtask::Client& client, std::vector<dtask::Future<long long>>& held,
                  const std::vector<long long>& computed_by) {
  std::vector<dtask::Future<long long>> again;
  for (auto& f : held) again.push_back(client.submit(add64, f, 0LL));
  require(client.gather(again) == computed_by, "a held result changed: it was recomputed");
  require(client.gather(held) == computed_by, "a held future no longer reads its value");
}

std::vector<int> range(int n) {
  std::vector<int> xs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) xs[static_cast<std::size_t>(i)] = i;
  return xs;
}

void scale_down(dtask::slurm::ClusterOptions o) {
  dtask::slurm::Cluster cluster(o);
  dtask::Client client(cluster);
  cluster.scale_jobs(2);
  require(cluster.wait_for_workers(2 * o.processes, 5min), "the workers of 2 jobs did not join");
  auto held = client.map(pid, range(200));
  auto computed_by = client.gather(held);
  cluster.scale_jobs(1);
  require(within(120s, [&] {
            int retired = 0;
            for (const auto& j : cluster.jobs()) retired += (j.ended && j.retired) ? 1 : 0;
            return retired == 1 && alive_jobs(cluster) == 1;
          }),
          "scale_jobs(1): no job was retired and ended within 120 s");
  require(cluster.failures().empty(), "a failure was reported: " + (cluster.failures().empty() ? "" : cluster.failures()[0]));
  same_results(client, held, computed_by);
  std::printf("scale-down: 1 of 2 jobs retired, 200 held results unchanged, %zu jobs submitted\n", cluster.jobs().size());
}

void adapt(dtask::slurm::ClusterOptions o) {
  dtask::slurm::Cluster cluster(o);
  dtask::Client client(cluster);
  dtask::slurm::AdaptSettings a;
  a.scale_down_wait = 5s;
  a.cooldown = 5s;
  cluster.adapt(0, 4, a);
  std::vector<dtask::Future<int>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(client.submit(slow_inc, i, 50));
  auto values = client.gather(fs);
  for (int i = 0; i < 200; ++i) require(values[static_cast<std::size_t>(i)] == i + 1, "a wrong result");
  const std::size_t grown = cluster.jobs().size();
  require(grown >= 1 && grown <= 4, "adapt(0, 4) submitted " + std::to_string(grown) + " jobs");
  fs.clear();  // released: nothing holds the workers any more
  require(within(180s, [&] { return alive_jobs(cluster) == 0; }), "the cluster did not shrink to 0 jobs once idle");
  for (const auto& j : cluster.jobs()) require(j.retired, "job " + j.id + " ended but was not retired by adapt");
  require(cluster.failures().empty(), "a failure was reported");
  std::printf("adapt: 200 results right, %zu jobs submitted (max 4), shrunk to 0 when idle, %zu jobs in all\n", grown,
              cluster.jobs().size());
}

void lifetime(dtask::slurm::ClusterOptions o) {
  o.worker_extra_args = {"--lifetime", "10s", "--lifetime-stagger", "2s"};
  dtask::slurm::Cluster cluster(o);
  dtask::Client client(cluster);
  cluster.scale_jobs(2);
  require(cluster.wait_for_workers(2 * o.processes, 5min), "the workers of 2 jobs did not join");
  std::vector<dtask::Future<long long>> held;
  std::vector<long long> computed_by;
  const auto end = std::chrono::steady_clock::now() + 35s;
  while (std::chrono::steady_clock::now() < end) {
    auto batch = client.map(pid, range(20));
    auto values = client.gather(batch);
    held.insert(held.end(), batch.begin(), batch.end());
    computed_by.insert(computed_by.end(), values.begin(), values.end());
    std::this_thread::sleep_for(500ms);
  }
  require(cluster.jobs().size() > 2, "no job was replaced after its workers' lifetime");
  require(cluster.failures().empty(), "a failure was reported");
  same_results(client, held, computed_by);
  std::printf("lifetime: %zu jobs submitted for 2 slots, %zu held results unchanged\n", cluster.jobs().size(),
              held.size());
}

void throwing(dtask::slurm::ClusterOptions o) {
  dtask::slurm::Cluster cluster(o);
  cluster.scale_jobs(2);
  require(cluster.wait_for_workers(2 * o.processes, 5min), "the workers of 2 jobs did not join");
  std::printf("throw: 2 jobs running, throwing\n");
  std::fflush(stdout);
  throw std::logic_error("the user's code threw");
}

}  // namespace

int main(int argc, char** argv) {
  dtask::slurm::ClusterOptions o;
  o.cores = 2;
  o.processes = 2;
  o.memory = "500MB";
  o.walltime = "00:10:00";
  std::string mode = argc > 1 ? argv[1] : "";
  if (!parse(argc, argv, o) || o.plugin.empty()) {
    std::fprintf(stderr, "usage: cluster_scenarios scale-down|adapt|lifetime|throw --plugin P [options]\n");
    return 2;
  }
  try {
    if (mode == "scale-down") scale_down(o);
    else if (mode == "adapt") adapt(o);
    else if (mode == "lifetime") lifetime(o);
    else if (mode == "throw") throwing(o);
    else {
      std::fprintf(stderr, "cluster_scenarios: unknown mode '%s'\n", mode.c_str());
      return 2;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cluster_scenarios %s: %s\n", mode.c_str(), e.what());
    return 1;
  }
}

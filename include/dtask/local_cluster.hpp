// LocalCluster: a scheduler and N workers on this machine, as threads or as processes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <dtask/memory.hpp>
#include <dtask/types.hpp>

namespace dtask {

struct LocalClusterOptions {
  int n_workers = 2;
  int threads_per_worker = 1;           // Dask's nthreads
  std::string plugin;                   // task plugin (.so); empty: the tasks linked into this program
  bool processes = false;               // workers as `dtask-worker` processes instead of threads
  std::string host = "127.0.0.1";       // address to bind; `interface` wins when set
  std::string interface;                // e.g. "lo", "hsn0"
  bool secure = true;                   // CURVE on every socket
  std::uint64_t memory_limit = 0;       // bytes per worker, 0 = unlimited
  MemoryThresholds memory_thresholds;   // fractions of memory_limit: spill, pause, terminate (dtask/memory.hpp)
  std::string local_directory;          // each worker's spill directory is made under <this>/worker-<i> (default: $TMPDIR, else /tmp)
  std::vector<std::map<std::string, double>> worker_resources;  // by worker index
  std::string log_level = "warn";
  // The dashboard (docs/dashboard.md): "" or ":8787" (Dask's default; the next free port if
  // taken), ":0" (random), "HOST:PORT", or "none".
  std::string dashboard_address;
  std::string report;  // written when the cluster closes: the whole run as one HTML page; empty: none
  FastPaths fast_paths = FastPaths::from_environment();  // for its scheduler, workers and clients
  // A task that was running on this many workers that died fails with a KilledWorker error
  // (Dask's allowed-failures; 0: never). Only worker processes can die and come back: threads
  // die with the program.
  std::uint32_t allowed_failures = 3;
};

class LocalCluster {
 public:
  explicit LocalCluster(LocalClusterOptions options = {});
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  const std::string& scheduler_address() const;
  // The dashboard's URL with its access token (Dask's dashboard_link); empty with "none".
  const std::string& dashboard_link() const;
  // Address, keys and the cluster's fast_paths: what a Client(cluster) connects with.
  ConnectOptions connect_options() const;
  const LocalClusterOptions& options() const;
  // Stops workers and scheduler; idempotent, also run by the destructor.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtask

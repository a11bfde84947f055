// A worker's memory thresholds (Dask's distributed.worker.memory.target/spill/pause/terminate), for LocalCluster, dtask-run and slurm::Cluster.
#pragma once

namespace dtask {

// Fractions of a worker's memory_limit; 0 turns one off. Each must be 0 or in (0, 1], and the
// ones that are set must rise target <= spill <= pause <= terminate (checked when the workers
// start: std::invalid_argument naming the field). Nothing happens without a memory_limit.
struct MemoryThresholds {
  double target = 0.60;     // results held above this: the least recently used go to disk
  double spill = 0.70;      // process memory above this: more go to disk, until it is back under target
  double pause = 0.80;      // process memory above this: the worker starts no new task until it falls
  double terminate = 0.95;  // process memory above this: the worker process is killed and restarted
  bool operator==(const MemoryThresholds&) const = default;
};

}  // namespace dtask

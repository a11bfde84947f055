// Which ranks of a launcher's job (mpirun, srun) run on this node, from the launcher's environment: for dtask-run's memory_limit "auto".
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace dtask {

// Global ranks [first, first + count) run on this node.
struct NodeRanks {
  int first = 0;
  int count = 0;
  bool operator==(const NodeRanks&) const = default;
};

// Reads the launcher's local rank and local size: Open MPI (OMPI_COMM_WORLD_LOCAL_RANK/_SIZE,
// first, since mpirun inside a Slurm allocation also sees the allocation's SLURM_* variables),
// MPICH/Hydra (MPI_LOCALRANKID/MPI_LOCALNRANKS), then Slurm (SLURM_LOCALID with the count of
// SLURM_NODEID's entry in SLURM_STEP_TASKS_PER_NODE, else SLURM_TASKS_PER_NODE, like "2(x3),1",
// else SLURM_NTASKS_PER_NODE). The ranks of a node are taken to be consecutive (Open MPI's
// default by-slot mapping, Slurm's default block distribution): first = rank - local rank. Under
// a cyclic mapping the count is still right and only which of ranks 0 and 1 share the node may
// be wrong. nullopt when the launcher says nothing usable. `env` looks a variable up (nullptr: unset).
std::optional<NodeRanks> node_ranks(int rank, const std::function<const char*(const char*)>& env);

// How many of `node`'s ranks are workers: those at or above `first_worker_rank` (2: rank 0
// schedules and rank 1 runs the client; 1 with --no-client) and below `size`. Without node
// information every worker rank counts (the smallest share, so never an over-commit). At least 1.
int worker_ranks_on_node(const std::optional<NodeRanks>& node, int size, int first_worker_rank);

// Slurm's compressed task counts ("2(x3),1") -> the count of node `index`; nullopt if malformed
// or out of range.
std::optional<int> slurm_tasks_on_node(const std::string& tasks_per_node, int index);

}  // namespace dtask

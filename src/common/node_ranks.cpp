// Ranks of this node from mpirun's or srun's environment (see node_ranks.hpp).
#include "common/node_ranks.hpp"

#include <algorithm>
#include <cstdlib>

namespace dtask {

namespace {

std::optional<int> number(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v < 0 || v > 1'000'000) return std::nullopt;
  return static_cast<int>(v);
}

std::optional<NodeRanks> from(int rank, std::optional<int> local_rank, std::optional<int> local_size) {
  if (!local_rank || !local_size || *local_size < 1 || *local_rank >= *local_size || *local_rank > rank) {
    return std::nullopt;
  }
  return NodeRanks{rank - *local_rank, *local_size};
}

}  // namespace

std::optional<int> slurm_tasks_on_node(const std::string& tasks_per_node, int index) {
  if (index < 0) return std::nullopt;
  std::size_t pos = 0;
  int node = 0;
  while (pos < tasks_per_node.size()) {
    const std::size_t comma = std::min(tasks_per_node.find(',', pos), tasks_per_node.size());
    const std::string part = tasks_per_node.substr(pos, comma - pos);
    pos = comma + 1;
    // "N" or "N(xR)"
    const std::size_t paren = part.find('(');
    const auto count = number(part.substr(0, paren).c_str());
    if (!count) return std::nullopt;
    int repeat = 1;
    if (paren != std::string::npos) {
      if (part.size() < paren + 4 || part.compare(paren, 2, "(x") != 0 || part.back() != ')') return std::nullopt;
      const auto r = number(part.substr(paren + 2, part.size() - paren - 3).c_str());
      if (!r || *r < 1) return std::nullopt;
      repeat = *r;
    }
    if (index < node + repeat) return *count;
    node += repeat;
  }
  return std::nullopt;
}

std::optional<NodeRanks> node_ranks(int rank, const std::function<const char*(const char*)>& env) {
  if (rank < 0) return std::nullopt;
  if (auto r = from(rank, number(env("OMPI_COMM_WORLD_LOCAL_RANK")), number(env("OMPI_COMM_WORLD_LOCAL_SIZE")))) return r;
  if (auto r = from(rank, number(env("MPI_LOCALRANKID")), number(env("MPI_LOCALNRANKS")))) return r;
  const auto local_id = number(env("SLURM_LOCALID"));
  if (!local_id) return std::nullopt;
  const auto node_id = number(env("SLURM_NODEID"));
  for (const char* name : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    const char* v = env(name);
    if (v == nullptr || node_id == std::nullopt) continue;
    // The first of them that reads decides (the step's counts describe this step, the job's may not).
    if (const auto count = slurm_tasks_on_node(v, *node_id)) return from(rank, local_id, count);
  }
  return from(rank, local_id, number(env("SLURM_NTASKS_PER_NODE")));
}

int worker_ranks_on_node(const std::optional<NodeRanks>& node, int size, int first_worker_rank) {
  int lo = first_worker_rank, hi = size;
  if (node) {
    lo = std::max(lo, node->first);
    hi = std::min(hi, node->first + node->count);
  }
  return std::max(1, hi - lo);
}

}  // namespace dtask

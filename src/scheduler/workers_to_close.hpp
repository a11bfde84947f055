// Which workers to retire when a cluster shrinks (Dask's workers_to_close): a pure ordering, no state.
//
// Purpose: scale-down (Client::retire_workers callers, the adapt policy) must lose as little as
//   possible: an idle worker costs nothing to let go, a worker holding few bytes costs a short
//   hand-over, a busy one costs its running tasks' time.
// Inputs: a view of each worker (name, optional group such as its Slurm job, tasks processing,
//   bytes held, whether it is already leaving), and how many to close.
// Action: workers already leaving are skipped (they are gone already). The rest are ordered
//   idle first, then by fewest bytes held, then fewest tasks processing, then by name (so the
//   answer is the same every time); the first n are returned. With groups (by_group): whole
//   groups are chosen instead, ordered the same way by their totals (a group is idle when all its
//   workers are), and every worker of a chosen group is returned (a Slurm job ends only when all
//   its workers have left).
// Caveats: pure and O(w log w); it knows nothing of which results are unique. n larger than the
//   number available returns all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dtask::scheduler {

struct WorkerLoad {
  std::string name;
  std::string group;            // e.g. the Slurm job id its workers share; empty: its own
  std::size_t processing = 0;   // tasks placed there and not finished
  std::uint64_t nbytes = 0;     // bytes of results it holds
  bool leaving = false;         // already retiring: not chosen again, not counted
};

// The names of up to n workers to retire, best first.
std::vector<std::string> workers_to_close(std::span<const WorkerLoad> workers, std::size_t n);
// The groups (by WorkerLoad::group; a worker with no group is a group of its own, named by the
// worker) of up to n groups to retire, best first, each with its workers' names.
struct GroupToClose {
  std::string group;
  std::vector<std::string> workers;
};
std::vector<GroupToClose> groups_to_close(std::span<const WorkerLoad> workers, std::size_t n);

}  // namespace dtask::scheduler

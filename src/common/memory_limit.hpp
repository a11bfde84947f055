// A worker's memory_limit as users write it ("4GiB", "auto", "0", "0.5") and the machine's memory, including Slurm's --mem.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dtask {

// The process's resident memory in bytes (/proc/self/statm), 0 if it cannot be read.
std::uint64_t resident_bytes();
// Resident memory of another process (/proc/<pid>/statm), 0 if it cannot be read.
std::uint64_t resident_bytes_of(long pid);
// Memory this machine gives us: physical memory, lowered by a cgroup limit when there is one.
std::uint64_t machine_memory();

// The cgroup memory limit that applies to this process, in bytes; 0 when none. Pure over its
// inputs (for tests): `proc_self_cgroup` is /proc/self/cgroup's text, `cgroup_root` where the
// hierarchies are mounted (/sys/fs/cgroup). v2: the smallest memory.max on the path from the
// process's cgroup up to the root; v1: the same with the memory controller's memory.limit_in_bytes
// (its "unlimited" is a huge number, taken as none).
std::uint64_t cgroup_memory_limit(const std::string& proc_self_cgroup, const std::string& cgroup_root);

// What the worker's limit may be derived from; read_environment() fills it from Slurm's variables.
struct MemoryEnvironment {
  std::uint64_t machine = 0;         // machine_memory()
  std::uint64_t slurm_job_node = 0;  // SLURM_MEM_PER_NODE (MiB) in bytes, or SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE; 0: none
  static MemoryEnvironment read_environment();
};

// `spec`: "0" (no limit), "auto" (the Slurm job's memory on this node if it has --mem, else the
// machine's, divided by `workers_on_node`), a byte size ("4GiB", "500MB"), or a fraction ("0.5":
// each worker gets that share of the memory auto would divide, not divided by the workers, as Dask
// reads a float <= 1). workers_on_node below 1 counts as 1. nullopt with `*error` set
// ("cannot read memory limit 'x': expected 0, auto, a size like 4GiB or a fraction like 0.5") if
// malformed, or if auto finds no memory to divide.
std::optional<std::uint64_t> resolve_memory_limit(const std::string& spec, int workers_on_node,
                                                  const MemoryEnvironment& env, std::string* error);

}  // namespace dtask

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

// What the worker's limit may be derived from; read_environment() fills it from Slurm's variables.
struct MemoryEnvironment {
  std::uint64_t machine = 0;         // machine_memory()
  std::uint64_t slurm_job_node = 0;  // SLURM_MEM_PER_NODE (MiB) in bytes, or SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE; 0: none
  static MemoryEnvironment read_environment();
};

// `spec`: "0" (no limit), "auto" (the Slurm job's memory on this node if it has --mem, else the
// machine's, divided by `workers_on_node`), a byte size ("4GiB", "500MB"), or a fraction of the
// machine's memory per worker ("0.5", as Dask reads a float <= 1). nullopt with `*error` set
// ("cannot read memory limit 'x': expected 0, auto, a size like 4GiB or a fraction like 0.5") if
// malformed, or if auto finds no memory to divide.
std::optional<std::uint64_t> resolve_memory_limit(const std::string& spec, int workers_on_node,
                                                  const MemoryEnvironment& env, std::string* error);

}  // namespace dtask

// What a worker does about its memory (Dask's target/spill/pause/terminate thresholds), as one pure function.
//
// Purpose: the worker's loop samples two numbers (bytes of results held in memory, the process's
// resident memory) and asks judge_memory() what to do; the data store spills, the core pauses,
// the loop terminates. Pure (no clock, no /proc), so every rule is a unit test.
// The thresholds are fractions of memory_limit (Dask's distributed.worker.memory.*); 0 turns one
// off. With memory_limit 0 nothing is ever spilled, paused or terminated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <dtask/memory.hpp>

namespace dtask::worker {

// The public struct is the worker's own: one set of fields and defaults for every launcher.
using MemoryThresholds = dtask::MemoryThresholds;

// The dtask-worker arguments that set `t` ("--memory-target=0.6", ...), the shortest text that
// reads back as each value; with `only_changed` just the ones that differ from the defaults (a
// job script stays short). LocalCluster and slurm::Cluster start their workers with these.
std::vector<std::string> threshold_arguments(const MemoryThresholds& t, bool only_changed);

// Throws std::invalid_argument naming the field unless each is 0 or in (0, 1], and the ones
// that are set rise in the order target <= spill <= pause <= terminate.
void validate(const MemoryThresholds& t);

struct MemorySample {
  std::uint64_t held = 0;     // bytes of results in memory (the data store's count)
  std::uint64_t process = 0;  // resident bytes of the process; 0: not measured (threads-mode LocalCluster)
};

struct MemoryVerdict {
  std::uint64_t spill_bytes = 0;  // spill at least this many bytes of held results now (LRU first)
  bool pause = false;             // the worker should be paused after this sample
  bool terminate = false;         // kill the process now
  bool operator==(const MemoryVerdict&) const = default;
};

// Which process-memory thresholds `process` is above (each false when that threshold is off, the
// limit is 0 or process is 0, i.e. not measured). judge_memory's process rules read it, and so does
// the worker's memory monitor thread, which wakes the loop when these change and kills the process
// on `terminate`.
struct ProcessCrossings {
  bool spill = false;
  bool pause = false;
  bool terminate = false;
  bool operator==(const ProcessCrossings&) const = default;
};
ProcessCrossings process_crossings(const MemoryThresholds& t, std::uint64_t limit, std::uint64_t process);

// `paused`: whether the worker is paused now (pausing has no hysteresis beyond the threshold
// itself: it resumes once process memory is back under pause, as Dask does).
MemoryVerdict judge_memory(const MemoryThresholds& t, std::uint64_t limit, const MemorySample& s, bool paused);

}  // namespace dtask::worker

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

namespace dtask::worker {

struct MemoryThresholds {
  double target = 0.60;     // held results above this: spill least recently used ones down to it
  double spill = 0.70;      // process memory above this: spill more, until process memory is under target
  double pause = 0.80;      // process memory above this: start no new task until it falls below again
  double terminate = 0.95;  // process memory above this: the process is killed (its supervisor restarts it)
};

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

// `paused`: whether the worker is paused now (pausing has no hysteresis beyond the threshold
// itself: it resumes once process memory is back under pause, as Dask does).
MemoryVerdict judge_memory(const MemoryThresholds& t, std::uint64_t limit, const MemorySample& s, bool paused);

}  // namespace dtask::worker

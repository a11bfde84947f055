// Dask's target/spill/pause/terminate rules as one pure function (see memory_policy.hpp).
#include "worker/memory_policy.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace dtask::worker {

namespace {

// The shortest text that reads back as the same double ("0.6", not "0.59999999999999998").
std::string show(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// The byte count a fraction of the limit stands for; the fraction is in (0, 1], so it fits.
std::uint64_t share(double fraction, std::uint64_t limit) {
  return static_cast<std::uint64_t>(fraction * static_cast<double>(limit));
}

}  // namespace

std::vector<std::string> threshold_arguments(const MemoryThresholds& t, bool only_changed) {
  const MemoryThresholds d;
  const struct {
    const char* flag;
    double value, fallback;
  } fields[] = {{"--memory-target=", t.target, d.target},
                {"--memory-spill=", t.spill, d.spill},
                {"--memory-pause=", t.pause, d.pause},
                {"--memory-terminate=", t.terminate, d.terminate}};
  std::vector<std::string> args;
  for (const auto& f : fields) {
    if (!only_changed || f.value != f.fallback) args.push_back(f.flag + show(f.value));
  }
  return args;
}

void validate(const MemoryThresholds& t) {
  struct Field {
    const char* name;
    double value;
  };
  const Field fields[] = {{"target", t.target}, {"spill", t.spill}, {"pause", t.pause}, {"terminate", t.terminate}};
  for (const Field& f : fields) {
    // !(v >= 0) also catches NaN.
    if (!(f.value >= 0.0) || f.value > 1.0) {
      throw std::invalid_argument(std::string("memory threshold ") + f.name + " must be 0 (off) or a fraction in (0, 1], got " +
                                  show(f.value));
    }
  }
  // The ones that are set must rise: a pause below target would pause a worker that is not
  // even spilling yet, a terminate below pause would kill it before it could pause.
  const Field* previous = nullptr;
  for (const Field& f : fields) {
    if (f.value == 0.0) continue;
    if (previous != nullptr && f.value < previous->value) {
      throw std::invalid_argument(std::string("memory threshold ") + f.name + " (" + show(f.value) + ") is below " +
                                  previous->name + " (" + show(previous->value) +
                                  "): they must rise target <= spill <= pause <= terminate");
    }
    previous = &f;
  }
}

ProcessCrossings process_crossings(const MemoryThresholds& t, std::uint64_t limit, std::uint64_t process) {
  ProcessCrossings c;
  if (limit == 0 || process == 0) return c;
  c.spill = t.spill > 0.0 && process > share(t.spill, limit);
  c.pause = t.pause > 0.0 && process > share(t.pause, limit);
  c.terminate = t.terminate > 0.0 && process > share(t.terminate, limit);
  return c;
}

MemoryVerdict judge_memory(const MemoryThresholds& t, std::uint64_t limit, const MemorySample& s, bool paused) {
  // No hysteresis: pausing depends on the sample alone, so `paused` does not change the verdict
  // (it is in the signature so a band can be added without touching the callers).
  (void)paused;
  MemoryVerdict v;
  if (limit == 0) return v;
  const ProcessCrossings over = process_crossings(t, limit, s.process);

  // Held results above target: spill the excess (Dask's "target" rule, counted on our own bytes).
  if (t.target > 0.0) {
    const std::uint64_t target = share(t.target, limit);
    if (s.held > target) v.spill_bytes = s.held - target;
  }
  // Process memory above spill: spill until the process would be back at target. With target off,
  // back at spill itself (Dask: `target or spill`). Never more than is held: the rest of the
  // process's memory is not ours to spill. Only a measured process counts (process == 0: threads mode).
  if (over.spill) {
    const std::uint64_t goal = share(t.target > 0.0 ? t.target : t.spill, limit);
    v.spill_bytes = std::max(v.spill_bytes, std::min(s.process - goal, s.held));
  }
  // Pause on process memory. When it is not measured (threads-mode LocalCluster: many workers in
  // one process, so the process's RSS says nothing about one worker) the held bytes stand in for it,
  // so such a worker still stops taking work when its results alone pass the threshold.
  v.pause = s.process > 0 ? over.pause : (t.pause > 0.0 && s.held > share(t.pause, limit));
  // Terminate only on a measured process: killing is for a process whose memory we actually saw.
  v.terminate = over.terminate;
  return v;
}

}  // namespace dtask::worker

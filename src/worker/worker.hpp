// A worker: registers with the scheduler, runs tasks on its executor, serves and fetches data.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <dtask/types.hpp>

#include "plugin/plugin.hpp"
#include "protocol/messages.hpp"
#include "worker/memory_policy.hpp"
#include "worker/running_board.hpp"

namespace dtask::worker {

// Under AddressSanitizer or ThreadSanitizer a process's resident memory is mostly the sanitizer's
// (shadow memory, ASan's quarantine of freed blocks): no measure of what the worker holds, and a
// limit on it would terminate healthy workers. There the worker spills and pauses on held bytes
// only, as when several workers share a process.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kResidentMemoryIsTheProgramsOwn = false;
#else
inline constexpr bool kResidentMemoryIsTheProgramsOwn = true;
#endif

struct WorkerOptions {
  std::string scheduler_address;
  Security security;
  std::string name;
  std::string host = "127.0.0.1";   // address its data server binds on
  std::string interface;            // wins over host when set
  int nthreads = 1;
  int rank = -1;
  std::uint64_t memory_limit = 0;           // bytes; 0: no limit (nothing spilled, paused or terminated)
  MemoryThresholds memory_thresholds;       // fractions of memory_limit (memory_policy.hpp)
  // Sample this process's resident memory (spill, pause and terminate on it). False when several
  // workers share the process (threads-mode LocalCluster): held bytes only, never terminate.
  bool measure_process_memory = kResidentMemoryIsTheProgramsOwn;
  // Compress spill files with lz4 when a sample shows it pays; DTASK_SPILL_COMPRESSION=0 turns it off.
  bool spill_compression = true;
  protocol::Resources resources;
  std::shared_ptr<const plugin::Plugin> plugin;
  std::string local_directory;      // the worker's spill directory is made under it (spill_directory.hpp)
  std::string where;                // log prefix
  std::uint64_t connect_timeout_ms = 30000;
  std::uint64_t scheduler_timeout_ms = 15000;
  std::uint64_t fetch_timeout_ms = 10000;
  std::uint64_t drain_timeout_ms = 30000;  // retire(): leave after this long even if not all was handed over
  std::uint64_t lifetime_ms = 0;  // retire on its own this long after it registers (--lifetime); 0: never
  FastPaths fast_paths = FastPaths::from_environment();  // which latency shortcuts this worker takes
  // Set by its supervisor (supervisor.hpp): how the incarnation before this one ended, sent in
  // RegisterWorker, and the shared board its executor marks running tasks on. Without a
  // supervisor: a first start and a private board.
  protocol::PreviousExit previous;
  std::shared_ptr<RunningBoard> board;
};

class Worker {
 public:
  // Binds the data server at once; throws std::runtime_error with the reason if it cannot.
  explicit Worker(WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  const std::string& address() const;
  // Serves until the scheduler says shut down (returns its code) or is lost (returns non-zero).
  int run();
  // Thread- and signal-safe: leave the cluster now with this code.
  void stop(int code);
  // Thread- and signal-safe: leave gracefully (worker/retire.hpp): finish what runs, give back what
  // has not started, hand every result held only here to another worker, then run() returns 0.
  // Called again more than a second later (a second SIGTERM, Ctrl-C twice): stop(code) now.
  void retire(int code);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtask::worker

// RunningBoard: which task each of a worker's threads is running, readable by its supervisor after the worker died.
//
// Who owns what: the supervisor (supervisor.hpp) makes a shared board (MAP_SHARED|MAP_ANONYMOUS)
// before it forks an incarnation, so the page outlives the incarnation's death. Inside the
// worker each slot has one writer: executor thread i writes slot i, and the thread running a task
// on the loop (Executor::run_here; only one at a time, see loop_takeover.hpp) writes the last
// slot. The supervisor reads every slot only after waitpid() reported the death, when no writer is
// left, and clears the board before the next incarnation. Without a supervisor (threads-mode
// LocalCluster, tests) the board is private memory nobody reads.
//
// A slot holds the task id + 1 (0 = idle), stored relaxed: a store per task start and end is the
// whole cost on the hot path. Each slot has its own cache line, so executor threads and the loop
// thread do not slow each other down. A task run without a TaskId (an early start, which carries
// ~0 until its ComputeTask adopts it) reads as idle.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "protocol/ids.hpp"

namespace dtask::worker {

class RunningBoard {
 public:
  // A board in memory that a child forked afterwards shares with this process; throws
  // std::runtime_error if the mapping cannot be made.
  static std::shared_ptr<RunningBoard> make_shared_across_fork(std::size_t slots);
  // A board only this process sees (no supervisor).
  static std::shared_ptr<RunningBoard> make_private(std::size_t slots);
  ~RunningBoard();
  RunningBoard(const RunningBoard&) = delete;
  RunningBoard& operator=(const RunningBoard&) = delete;

  std::size_t slots() const { return slots_; }
  // ---- the slot's one writer (a slot past the end is ignored: a board made for fewer threads)
  void start(std::size_t slot, protocol::TaskId id) {
    if (slot < slots_) cells_[slot].value.store(id.value + 1, std::memory_order_relaxed);
  }
  void end(std::size_t slot) {
    if (slot < slots_) cells_[slot].value.store(0, std::memory_order_relaxed);
  }
  // ---- the reader (the supervisor, after the writers died; tests)
  // The tasks marked running, in slot order, each once.
  std::vector<protocol::TaskId> running() const;
  void clear();

  // The worker killed itself for memory (its monitor thread, just before SIGKILL): the
  // supervisor says so instead of just "killed by signal 9". Sizes in MiB; one more cell.
  void note_memory_kill(std::uint64_t process_mib, std::uint64_t limit_mib) {
    cells_[slots_].value.store((process_mib & 0xffffffffu) << 32 | (limit_mib & 0xffffffffu), std::memory_order_relaxed);
  }
  // {process MiB, limit MiB} if the last incarnation was killed for memory; {0, 0} otherwise.
  std::pair<std::uint64_t, std::uint64_t> memory_kill() const {
    const std::uint64_t v = cells_[slots_].value.load(std::memory_order_relaxed);
    return {v >> 32, v & 0xffffffffu};
  }

 private:
  struct alignas(64) Cell {
    std::atomic<std::uint64_t> value{0};
  };
  RunningBoard(Cell* cells, std::size_t slots, std::size_t mapped_bytes);
  Cell* cells_;
  std::size_t slots_;
  std::size_t mapped_bytes_;  // 0: heap memory (private board)
};

}  // namespace dtask::worker

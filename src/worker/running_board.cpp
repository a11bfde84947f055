// RunningBoard: the slots' memory, shared across fork or private (see running_board.hpp).
#include "worker/running_board.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace dtask::worker {

RunningBoard::RunningBoard(Cell* cells, std::size_t slots, std::size_t mapped_bytes)
    : cells_(cells), slots_(slots), mapped_bytes_(mapped_bytes) {}

std::shared_ptr<RunningBoard> RunningBoard::make_shared_across_fork(std::size_t slots) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  // One cell more than the slots: the memory-kill note.
  const std::size_t bytes = std::max<std::size_t>(1, ((slots + 1) * sizeof(Cell) + page - 1) / page) * page;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error(std::string("cannot map the running-task board: ") + std::strerror(errno));
  auto* cells = static_cast<Cell*>(p);
  for (std::size_t i = 0; i <= slots; ++i) new (&cells[i]) Cell();
  return std::shared_ptr<RunningBoard>(new RunningBoard(cells, slots, bytes));
}

std::shared_ptr<RunningBoard> RunningBoard::make_private(std::size_t slots) {
  return std::shared_ptr<RunningBoard>(new RunningBoard(new Cell[slots + 1], slots, 0));
}

RunningBoard::~RunningBoard() {
  if (mapped_bytes_ != 0) ::munmap(cells_, mapped_bytes_);
  else delete[] cells_;
}

std::vector<protocol::TaskId> RunningBoard::running() const {
  std::vector<protocol::TaskId> out;
  for (std::size_t i = 0; i < slots_; ++i) {
    const std::uint64_t v = cells_[i].value.load(std::memory_order_relaxed);
    if (v == 0) continue;
    protocol::TaskId id{v - 1};
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

void RunningBoard::clear() {
  for (std::size_t i = 0; i <= slots_; ++i) cells_[i].value.store(0, std::memory_order_relaxed);
}

}  // namespace dtask::worker

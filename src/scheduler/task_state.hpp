// Scheduler-side task states and the legality table of transitions between them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dtask::scheduler {

// released → waiting → queued → processing → memory | erred, then forgotten (Dask's words).
enum class TaskState : std::uint8_t { released, waiting, queued, processing, memory, erred, forgotten };
inline constexpr std::size_t kNumTaskStates = 7;

const char* to_string(TaskState s);
// Whether the state machine table (state_machine.cpp) has a rule from `from` to `to`.
bool is_legal(TaskState from, TaskState to);

}  // namespace dtask::scheduler

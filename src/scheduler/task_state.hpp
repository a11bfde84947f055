// Scheduler-side task states, the events that move a task between them, and the legality queries.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dtask::scheduler {

// released → waiting → queued → processing → memory | erred, then forgotten (Dask's words).
enum class TaskState : std::uint8_t { released, waiting, queued, processing, memory, erred, forgotten };
inline constexpr std::size_t kNumTaskStates = 7;

// What happens to a task. Each event leads to one state; the table in state_machine.cpp says
// from which states it may happen. The data an event carries is in TaskEvent (task_event.hpp).
enum class TaskEventKind : std::uint8_t {
  wait_for_inputs,  // -> waiting: some inputs are not in memory yet
  queue,            // -> queued: ready, waiting for a worker slot (or for a worker that may run it)
  assign,           // -> processing: placed on a worker (carries the worker and any early start)
  finish,           // -> memory: its result exists on a worker (carries the inline value, the reporter)
  fail,             // -> erred: it or an input failed, was cancelled or cannot run (carries the failure)
  reschedule,       // -> released: to run again (worker died, retry, stolen, input lost, fetch failed)
  drop_data,        // -> released: its result is no longer needed or its last copy was lost
  forget,           // -> forgotten: nobody wants it and nothing depends on it
};
inline constexpr std::size_t kNumTaskEvents = 8;

const char* to_string(TaskState s);
const char* to_string(TaskEventKind e);
// The state an event leads to.
TaskState target_of(TaskEventKind e);
// Whether the state machine table (state_machine.cpp) has a rule from `from` to `to` (any event).
bool is_legal(TaskState from, TaskState to);
// Whether the table lets event `e` happen to a task in state `from`.
bool is_legal(TaskState from, TaskEventKind e);

}  // namespace dtask::scheduler

// A task event with the data it carries: the one argument of SchedulerState::transition().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "protocol/messages.hpp"
#include "scheduler/task_state.hpp"
#include "scheduler/task_table.hpp"

namespace dtask::scheduler {

// Everything an entry action needs beyond the task itself travels here, so no caller sets a
// member or a task field around a transition for the action to pick up. Only the fields of the
// event's kind are read; build one with the named constructors below.
struct TaskEvent {
  TaskEventKind kind;
  // assign: the worker it runs on; finish: the worker holding the result.
  WorkerId worker = kNoWorker;
  // assign: the client's early start there (TaskSpec::early_nonce, 0 = none) that the
  // ComputeTask names so the worker adopts its result (early_start.cpp).
  std::uint64_t early_nonce = 0;
  // finish: the result's size, the value inside the worker's TaskDone if it came inline (only
  // borrowed for the call: the waiting clients' KeyDone carries a copy), and the client whose
  // receipt reported the result (pushed_results.cpp): it has the value, so it gets no KeyDone.
  std::uint64_t nbytes = 0;
  const Payload* result = nullptr;
  std::optional<ClientId> reported_by;
  // fail: why (shared by every task the failure propagates to), and whether it was a cancel.
  std::shared_ptr<const Failure> failure;
  bool cancelled = false;

  explicit TaskEvent(TaskEventKind k) : kind(k) {}

  static TaskEvent wait_for_inputs() { return TaskEvent(TaskEventKind::wait_for_inputs); }
  static TaskEvent queue() { return TaskEvent(TaskEventKind::queue); }
  static TaskEvent assign(WorkerId w, std::uint64_t early_nonce = 0) {
    TaskEvent e(TaskEventKind::assign);
    e.worker = w;
    e.early_nonce = early_nonce;
    return e;
  }
  static TaskEvent finish(WorkerId on, std::uint64_t nbytes, const Payload* result,
                          std::optional<ClientId> reported_by = std::nullopt) {
    TaskEvent e(TaskEventKind::finish);
    e.worker = on;
    e.nbytes = nbytes;
    e.result = result;
    e.reported_by = reported_by;
    return e;
  }
  static TaskEvent fail(std::shared_ptr<const Failure> f, bool cancelled) {
    TaskEvent e(TaskEventKind::fail);
    e.failure = std::move(f);
    e.cancelled = cancelled;
    return e;
  }
  static TaskEvent reschedule() { return TaskEvent(TaskEventKind::reschedule); }
  static TaskEvent drop_data() { return TaskEvent(TaskEventKind::drop_data); }
  static TaskEvent forget() { return TaskEvent(TaskEventKind::forget); }
};

}  // namespace dtask::scheduler

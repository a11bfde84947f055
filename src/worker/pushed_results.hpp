// Fast path "pushed results": a small result goes straight to the client waiting for it.
//
// Purpose: the waiting client hears one network hop sooner than through the scheduler's KeyDone
//   (worker -> client instead of worker -> scheduler -> client).
// Inputs: a finished task's result, its ComputeTask::push_to (the clients' data identities,
//   filled by the scheduler for a small submit someone is about to wait for) and this worker's id.
// Action: one ResultPushed per client named, into the outbox, tagged with the task so that a
//   push the data socket refuses (a client not connected here yet: ROUTER_MANDATORY) comes back
//   to WorkerState::push_refused. The number of pushes decides whether TaskDone is held back
//   (held_done.hpp).
// Caveats: only results up to kInlineResultBytes. The client reports the result to the scheduler
//   itself (PushReceipt); KeyDone stays the fallback for a push that was lost. Switched off
//   (FastPaths::push_results = false), push_to is ignored and nothing is pushed. An early start's
//   result is pushed by early_start.cpp: it is that fast path's answer to a StartTask.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "worker/worker_outbox.hpp"

namespace dtask::worker {

class PushedResults {
 public:
  explicit PushedResults(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // Pushes a small result of `task` to each client in `push_to`; how many pushes went out.
  std::uint32_t push(protocol::TaskId task, const std::string& key, const Payload& result,
                     const std::vector<std::string>& push_to, protocol::WorkerId me, WorkerOutbox& out) const;

 private:
  bool enabled_;
};

}  // namespace dtask::worker

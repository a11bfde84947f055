// Early start's rule (which one-task submit a worker may start before the scheduler places it), pure.
#pragma once

#include "protocol/messages.hpp"

#include <dtask/types.hpp>

namespace dtask::detail {

// What the client knows when it decides (all under ClientCore::mutex_).
struct EarlyStartContext {
  bool target_known = false;     // a worker has pushed a result here: the one to ask
  bool previous_pending = false; // the last early-started task has not come back yet
  bool key_known = false;        // the key is already a future here: the scheduler may have it
};

// True if `spec`, the only task of a submit, may go to the target worker at once (StartTask).
// Only a task that will push its result (so the one waiting hears it from that worker), with
// no placement wishes (workers, resources: the scheduler's business), whose arguments are all
// values (inputs live where the scheduler knows), and one at a time (several would all land on
// that one worker instead of being spread by the scheduler). Off with FastPaths::early_start,
// FastPaths::push_results or FastPaths::run_on_loop (a worker runs a StartTask on
// its loop thread). Unit-tested in tests/unit/test_client_rules.cpp.
bool may_start_early(const FastPaths& fast, const protocol::TaskSpec& spec, const EarlyStartContext& ctx);

}  // namespace dtask::detail

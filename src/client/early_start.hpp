// Early start's rule (which one-task submit a worker may start before the scheduler places it), pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

#include <dtask/types.hpp>

namespace dtask::detail {

// What the client knows when it decides (all under ClientCore::mutex_).
struct EarlyStartContext {
  bool target_known = false;     // a worker has pushed a result here (EarlyTargets: whom to ask)
  bool previous_pending = false; // the last early-started task has not come back yet
  bool key_known = false;        // the key is already a future here: the scheduler may have it
};

// True if `spec`, the only task of a submit, may go to the target worker at once (StartTask).
// Only a task that will push its result (so the one waiting hears it from that worker), with
// no placement wishes (workers, resources: the scheduler's business), whose arguments are all
// values (inputs live where the scheduler knows), and one at a time (several would all land on
// that one worker instead of being spread by the scheduler; which worker: EarlyTargets). Off with FastPaths::early_start,
// FastPaths::push_results or FastPaths::run_on_loop (a worker runs a StartTask on
// its loop thread). Unit-tested in tests/unit/test_client_rules.cpp.
bool may_start_early(const FastPaths& fast, const protocol::TaskSpec& spec, const EarlyStartContext& ctx);

// Which worker the next early start goes to (issue 14's load spreading), pure. Asking the same
// worker every time put a whole submit-result loop on the worker that ran its first task. So
// the targets are the workers that have pushed a result here, each asked `run` times in a row,
// then the next, and at once when one declines (asking a different one for every task made W3's
// p50 ~2.5x slower on a busy machine, and a decliner would decline the rest of its run too). And now and then one qualifying task
// is not started early but left to the scheduler (exploring), whose placement deals tasks to
// idle workers in turn (placement.cpp): the worker it chooses pushes the result here, joins the
// targets and gets the next run. Exploring costs that task the early start's hop (a three-hop
// round trip instead of two), so it backs off: after `run` early starts while explorations find
// new workers, then twice as many each time one did not, up to kMaxGap (a worker that joins
// later is still found within that many). ClientCore holds one under mutex_. Unit-tested in
// tests/unit/test_client_rules.cpp.
class EarlyTargets {
 public:
  struct Target {
    protocol::WorkerId worker;
    std::string address;  // its data server (where the StartTask goes)
  };
  static constexpr std::size_t kMaxTargets = 256;
  static constexpr std::size_t kRun = 8;        // early starts in a row on one target
  static constexpr std::size_t kMaxGap = 1024;  // early starts between explorations, at most

  explicit EarlyTargets(std::size_t run = kRun) : run_(run == 0 ? 1 : run), gap_(run_) {}

  // A worker pushed a result here: it may be asked to start a task early from now on.
  void learn(protocol::WorkerId worker, const std::string& address);
  // A StartTask to it could not go (not connected yet, or gone): not asked again until it pushes.
  void forget(const std::string& address);
  // It declined a StartTask (NotStarted: busy, or the function not quick there lately): its run
  // ends, so the next early start asks the next target instead of being declined again.
  void declined(const std::string& address);
  bool empty() const { return known_.empty(); }
  // For a qualifying one-task submit: the worker to start it on, or nullptr to leave it to the
  // scheduler (no target known yet, or it is this task's turn to explore).
  const Target* next();

 private:
  std::vector<Target> known_;
  std::size_t run_;               // early starts in a row per target
  std::size_t in_run_ = 0;        // how many more the current target gets
  std::size_t turn_ = 0;          // index of the target asked last
  std::size_t since_explore_ = 0; // early starts since the last exploration
  std::size_t gap_;               // early starts between explorations (run_ .. kMaxGap)
  bool explored_ = false;         // the last qualifying task was left to the scheduler...
  std::size_t known_before_ = 0;  // ...when this many targets were known
};

}  // namespace dtask::detail

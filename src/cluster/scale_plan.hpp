// slurm::Cluster's pure rules: how many jobs to submit or which to cancel to reach a target, and what a job's end means.
#pragma once

#include <string>
#include <vector>

namespace dtask::slurm {

// One job as the rules see it (a snapshot of the cluster's table, oldest first).
struct JobView {
  std::string id;
  bool pending = false;           // Slurm says PENDING
  bool ended = false;             // seen in a final state (or gone)
  bool cancel_requested = false;  // we scancelled it
  // Its workers joined and every one still there is retiring on its own (--lifetime, SIGTERM):
  // it is on its way out, so it is replaced now. Its workers may be waiting for a new worker to
  // take results nobody else can hold; a replacement submitted only once the job has ended
  // would come after their drain timeout, and those results would be recomputed.
  bool leaving = false;
};

struct ScaleLimits {
  int max_pending_jobs = 8;  // never more than this many pending at once
  int max_jobs = 0;          // alive at once; 0: no cap
};

struct ScalePlan {
  int submit = 0;
  std::vector<std::string> cancel;  // in the order to cancel
};

// Alive = not ended, not being cancelled and not leaving. Above the target: cancel pending jobs first (they hold
// no results), newest first, then running ones newest first. Below it: submit the difference, within
// the caps, unless `hold` (a job failed before its workers joined, or sbatch is backing off).
// A leaving job still holds its allocation, so it counts against max_jobs until it ends.
ScalePlan plan_scale(const std::vector<JobView>& jobs, int target, const ScaleLimits& limits, bool hold);

enum class JobEnd {
  cancelled_by_us,  // expected: scale-down or close
  failed_to_join,   // ended before any worker joined: an error naming the job and its log; no resubmission
  replace,          // its workers ran (walltime, node loss): replaced while the cluster is scaled
};
JobEnd classify_end(bool cancel_requested, int workers_joined);

}  // namespace dtask::slurm

// slurm::Cluster's pure rules: submissions and cancellations toward a target, and the meaning of a job's end.
#include "cluster/scale_plan.hpp"

#include <algorithm>

namespace dtask::slurm {

ScalePlan plan_scale(const std::vector<JobView>& jobs, int target, const ScaleLimits& limits, bool hold) {
  ScalePlan plan;
  int alive = 0, pending = 0, leaving = 0;
  for (const auto& j : jobs) {
    if (j.ended || j.cancel_requested) continue;
    if (j.leaving) {
      ++leaving;
      continue;
    }
    ++alive;
    if (j.pending) ++pending;
  }
  if (alive > target) {
    int excess = alive - target;
    for (bool want_pending : {true, false}) {
      for (auto it = jobs.rbegin(); it != jobs.rend() && excess > 0; ++it) {
        if (it->ended || it->cancel_requested || it->leaving || it->pending != want_pending) continue;
        plan.cancel.push_back(it->id);
        --excess;
      }
    }
  } else if (alive < target && !hold) {
    int n = std::min(target - alive, limits.max_pending_jobs - pending);
    if (limits.max_jobs > 0) n = std::min(n, limits.max_jobs - alive - leaving);
    plan.submit = std::max(0, n);
  }
  return plan;
}

JobEnd classify_end(bool cancel_requested, int workers_joined) {
  if (cancel_requested) return JobEnd::cancelled_by_us;
  if (workers_joined == 0) return JobEnd::failed_to_join;
  return JobEnd::replace;
}

}  // namespace dtask::slurm

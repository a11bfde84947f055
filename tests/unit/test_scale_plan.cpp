// slurm::Cluster's rules without Slurm: submissions within the site caps, scale-down order, no resubmission after a failed join.
#include <doctest/doctest.h>

#include "cluster/scale_plan.hpp"

using namespace dtask::slurm;
using V = std::vector<std::string>;

namespace {
JobView running(const char* id) { return {id, false, false, false}; }
JobView pending(const char* id) { return {id, true, false, false}; }
JobView ended(const char* id) { return {id, false, true, false}; }
JobView cancelling(const char* id) { return {id, false, false, true}; }
JobView leaving(const char* id) { return {id, false, false, false, true}; }
}  // namespace

TEST_CASE("scale_plan.grows_to_target") {
  auto p = plan_scale({}, 3, {}, false);
  CHECK(p.submit == 3);
  CHECK(p.cancel.empty());
  p = plan_scale({running("1")}, 3, {}, false);
  CHECK(p.submit == 2);
  CHECK(plan_scale({running("1"), running("2")}, 2, {}, false).submit == 0);
}

TEST_CASE("scale_plan.pending_backlog_is_capped") {
  // Pending jobs count as capacity and the backlog never exceeds max_pending_jobs.
  auto p = plan_scale({pending("1"), pending("2")}, 10, {3, 0}, false);
  CHECK(p.submit == 1);
  CHECK(plan_scale({pending("1"), pending("2"), pending("3")}, 10, {3, 0}, false).submit == 0);
  CHECK(plan_scale({running("1"), running("2"), pending("3")}, 10, {3, 0}, false).submit == 2);
}

TEST_CASE("scale_plan.max_jobs_caps_the_total") {
  CHECK(plan_scale({running("1"), running("2")}, 10, {8, 4}, false).submit == 2);
  CHECK(plan_scale({running("1"), running("2"), running("3"), running("4")}, 10, {8, 4}, false).submit == 0);
}

TEST_CASE("scale_plan.ended_jobs_are_replaced_cancelled_ones_are_not_counted") {
  // A walltime-ended job no longer counts: one replacement.
  CHECK(plan_scale({ended("1"), running("2")}, 2, {}, false).submit == 1);
  // One being cancelled is not alive either, and is not cancelled twice.
  auto p = plan_scale({cancelling("1"), running("2")}, 1, {}, false);
  CHECK(p.submit == 0);
  CHECK(p.cancel.empty());
}

TEST_CASE("scale_plan.a_leaving_job_is_replaced_before_it_ends") {
  // Its workers retire at --lifetime and wait for a new worker to take their results: the
  // replacement goes in now, not once the job has ended (after their drain timeout).
  CHECK(plan_scale({leaving("1"), running("2")}, 2, {}, false).submit == 1);
  CHECK(plan_scale({leaving("1"), leaving("2")}, 2, {}, false).submit == 2);
  // It is never chosen for cancellation (it goes anyway), and once replaced nothing more happens.
  auto p = plan_scale({leaving("1"), running("2"), running("3")}, 2, {}, false);
  CHECK(p.submit == 0);
  CHECK(p.cancel.empty());
  CHECK(plan_scale({leaving("1"), running("2"), running("3")}, 1, {}, false).cancel == V{"3"});
  // It still holds its allocation: max_jobs counts it until Slurm reports the end.
  CHECK(plan_scale({leaving("1"), running("2")}, 2, {8, 2}, false).submit == 0);
  CHECK(plan_scale({leaving("1"), running("2")}, 2, {8, 3}, false).submit == 1);
  // A hold stops the replacement as it stops any submission.
  CHECK(plan_scale({leaving("1")}, 1, {}, true).submit == 0);
}

TEST_CASE("scale_plan.hold_stops_submissions_not_cancellations") {
  // After a job failed before joining (or while sbatch backs off): no submit/fail loop.
  CHECK(plan_scale({ended("1")}, 2, {}, true).submit == 0);
  CHECK(plan_scale({running("1"), running("2")}, 1, {}, true).cancel == V{"2"});
}

TEST_CASE("scale_plan.scale_down_cancels_pending_first_then_newest") {
  std::vector<JobView> jobs = {running("1"), running("2"), pending("3"), running("4"), pending("5")};
  CHECK(plan_scale(jobs, 4, {}, false).cancel == V{"5"});
  CHECK(plan_scale(jobs, 3, {}, false).cancel == V{"5", "3"});
  CHECK(plan_scale(jobs, 1, {}, false).cancel == V{"5", "3", "4", "2"});
  CHECK(plan_scale(jobs, 0, {}, false).cancel.size() == 5);
  CHECK(plan_scale(jobs, 0, {}, false).submit == 0);
}

TEST_CASE("scale_plan.job_end_meaning") {
  CHECK(classify_end(true, 0) == JobEnd::cancelled_by_us);
  CHECK(classify_end(true, 3) == JobEnd::cancelled_by_us);
  CHECK(classify_end(false, 0) == JobEnd::failed_to_join);
  CHECK(classify_end(false, 2) == JobEnd::replace);
}

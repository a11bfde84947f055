// The adapt policy of job-based clusters (cluster/adapt.hpp): grow, bounds, shrink, hysteresis, replacement, over simulated time.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cluster/adapt.hpp"

using namespace dtask::cluster;

namespace {

AdaptOptions options(std::size_t minimum, std::size_t maximum) {
  AdaptOptions o;
  o.minimum = minimum;
  o.maximum = maximum;
  o.workers_per_job = 1;
  o.threads_per_worker = 1;
  o.tasks_per_thread = 1.0;
  o.max_pending_jobs = 100;
  o.scale_down_wait_ms = 10'000;
  o.cooldown_ms = 5'000;
  return o;
}

AdaptJob pending(const std::string& id, std::uint64_t at = 0) { return {id, false, at}; }
AdaptJob running(const std::string& id, std::uint64_t at = 0) { return {id, true, at}; }
AdaptWorker idle(const std::string& job, std::uint64_t idle_ms, std::uint64_t nbytes = 0) {
  return {job + "-0", job, 0, nbytes, idle_ms, false};
}

// A cluster in simulated time: jobs start `start_delay_ms` after submission, end at walltime,
// workers retired leave at the next tick (their job ends with its last worker), cancelled jobs
// go at once. The load is the number of tasks in the system; the first workers take them.
struct Sim {
  AdaptPolicy policy;
  std::uint64_t now = 0;
  std::uint64_t tick_ms = 1000;
  std::uint64_t start_delay_ms = 3000;
  std::uint64_t walltime_ms = 0;  // 0: none
  std::uint64_t nbytes_per_worker = 0;  // results each worker holds (the client released them: 0)
  struct Job {
    std::string id;
    std::uint64_t submitted = 0;
    std::uint64_t started = 0;
    bool running = false;
    std::vector<std::string> workers;
  };
  std::vector<Job> jobs;
  std::map<std::string, std::uint64_t> idle_since;  // worker -> when it became idle
  std::map<std::string, bool> retiring;
  int next_id = 0;
  std::size_t submitted = 0, cancelled = 0, retired = 0, walltime_ended = 0;
  std::size_t grow_actions = 0, shrink_actions = 0, direction_changes = 0;
  int last_direction = 0;  // +1 grew, -1 shrank

  explicit Sim(AdaptOptions o) : policy(std::move(o)) {}

  std::size_t running_jobs() const {
    return static_cast<std::size_t>(std::count_if(jobs.begin(), jobs.end(), [](const Job& j) { return j.running; }));
  }
  std::size_t pending_jobs() const { return jobs.size() - running_jobs(); }

  void advance() {
    // Retired workers leave; a job whose workers have all left ends.
    for (auto& j : jobs) {
      std::erase_if(j.workers, [&](const std::string& w) {
        if (!retiring[w]) return false;
        idle_since.erase(w);
        return true;
      });
    }
    std::erase_if(jobs, [&](const Job& j) { return j.running && j.workers.empty(); });
    for (auto& j : jobs) {
      if (walltime_ms != 0 && j.running && now >= j.started + walltime_ms) {
        for (auto& w : j.workers) idle_since.erase(w);
        j.workers.clear();
        ++walltime_ended;
      }
    }
    std::erase_if(jobs, [&](const Job& j) { return j.running && j.workers.empty(); });
    for (auto& j : jobs) {
      if (!j.running && now >= j.submitted + start_delay_ms) {
        j.running = true;
        j.started = now;
        const auto& o = policy.options();
        for (std::size_t i = 0; i < o.workers_per_job; ++i) {
          j.workers.push_back(j.id + "-" + std::to_string(i));
          idle_since[j.workers.back()] = now;
        }
      }
    }
  }

  AdaptSnapshot snapshot(std::size_t load) {
    AdaptSnapshot s;
    s.now_ms = now;
    const auto& o = policy.options();
    std::size_t free = load;
    for (auto& j : jobs) {
      s.jobs.push_back({j.id, j.running, j.submitted});
      for (auto& w : j.workers) {
        std::size_t take = retiring[w] ? 0 : std::min(free, o.threads_per_worker);
        free -= take;
        if (take > 0) idle_since.erase(w);
        else if (!idle_since.count(w)) idle_since[w] = now;
        s.workers.push_back({w, j.id, take, nbytes_per_worker, take > 0 ? 0 : now - idle_since[w], retiring[w]});
        s.tasks_processing += take;
      }
    }
    s.tasks_waiting = free;
    return s;
  }

  AdaptDecision tick(std::size_t load) {
    advance();
    auto d = policy.step(snapshot(load));
    for (std::size_t i = 0; i < d.submit_jobs; ++i) jobs.push_back({"j" + std::to_string(next_id++), now, 0, false, {}});
    for (auto& id : d.cancel_jobs) {
      REQUIRE(std::any_of(jobs.begin(), jobs.end(), [&](const Job& j) { return j.id == id && !j.running; }));
      std::erase_if(jobs, [&](const Job& j) { return j.id == id; });
    }
    for (auto& w : d.retire_workers) retiring[w] = true;
    submitted += d.submit_jobs;
    cancelled += d.cancel_jobs.size();
    retired += d.retire_workers.size();
    const int dir = d.submit_jobs > 0 ? 1 : (!d.cancel_jobs.empty() || !d.retire_workers.empty()) ? -1 : 0;
    if (dir > 0) ++grow_actions;
    if (dir < 0) ++shrink_actions;
    if (dir != 0 && last_direction != 0 && dir != last_direction) ++direction_changes;
    if (dir != 0) last_direction = dir;
    now += tick_ms;
    return d;
  }
};

}  // namespace

TEST_CASE("Adapt.GrowsWithTheBacklog") {
  AdaptPolicy p(options(0, 10));
  AdaptSnapshot s;
  s.tasks_waiting = 5;
  CHECK(p.target_jobs(s) == 5);
  CHECK(p.step(s).submit_jobs == 5);
}

TEST_CASE("Adapt.NoLoadNoJobs") {
  AdaptPolicy p(options(0, 10));
  AdaptSnapshot s;
  CHECK(p.step(s).empty());
}

TEST_CASE("Adapt.TargetCountsThreadsWorkersPerJobAndBacklogPerThread") {
  auto o = options(0, 100);
  o.threads_per_worker = 4;
  o.workers_per_job = 2;
  o.tasks_per_thread = 2.0;
  AdaptPolicy p(o);
  AdaptSnapshot s;
  s.tasks_waiting = 17;  // 9 threads -> 3 workers -> 2 jobs
  CHECK(p.target_jobs(s) == 2);
  s.tasks_waiting = 16;  // 8 threads -> 2 workers -> 1 job
  CHECK(p.target_jobs(s) == 1);
}

TEST_CASE("Adapt.TargetDurationWhenTheMeanTaskTimeIsKnown") {
  auto o = options(0, 100);
  o.target_duration_ms = 5000;
  AdaptPolicy p(o);
  AdaptSnapshot s;
  s.tasks_waiting = 100;
  s.mean_task_ms = 200;  // 20 s of work: 4 threads finish it in 5 s
  CHECK(p.target_jobs(s) == 4);
  s.mean_task_ms = 0;    // unknown: the backlog rule (1 task per thread here)
  CHECK(p.target_jobs(s) == 100);
}

TEST_CASE("Adapt.BoundedByTheMaximum") {
  AdaptPolicy p(options(0, 4));
  AdaptSnapshot s;
  s.tasks_waiting = 1000;
  CHECK(p.step(s).submit_jobs == 4);
  s.jobs = {pending("a"), pending("b"), pending("c"), pending("d")};
  CHECK(p.step(s).submit_jobs == 0);
  s.jobs = {running("a"), running("b"), running("c"), running("d")};
  CHECK(p.step(s).submit_jobs == 0);
}

TEST_CASE("Adapt.BoundedByMaxPendingJobs") {
  auto o = options(0, 10);
  o.max_pending_jobs = 2;
  AdaptPolicy p(o);
  AdaptSnapshot s;
  s.tasks_waiting = 1000;
  CHECK(p.step(s).submit_jobs == 2);
  s.jobs = {pending("a"), pending("b")};
  CHECK(p.step(s).submit_jobs == 0);  // the queue is full
  s.jobs = {running("a"), pending("b")};
  CHECK(p.step(s).submit_jobs == 1);
  s.jobs = {running("a"), running("b")};
  CHECK(p.step(s).submit_jobs == 2);
}

TEST_CASE("Adapt.PendingJobsCountAsCapacity") {
  // dask-jobqueue#122/#498: jobs that pend must not be submitted again and again.
  Sim sim(options(0, 50));
  sim.start_delay_ms = 20'000;  // a busy queue
  for (int i = 0; i < 40; ++i) sim.tick(4);
  CHECK(sim.submitted == 4);
  CHECK(sim.cancelled == 0);
}

TEST_CASE("Adapt.ShrinksIdleJobsOnlyAfterTheWait") {
  AdaptPolicy p(options(0, 10));
  AdaptSnapshot s;
  s.jobs = {running("a"), running("b"), running("c")};
  s.workers = {idle("a", 3000), idle("b", 3000), idle("c", 3000)};
  s.now_ms = 100'000;
  CHECK(p.step(s).empty());  // the excess starts now
  s.now_ms += 9'999;
  for (auto& w : s.workers) w.idle_ms += 9'999;
  CHECK(p.step(s).empty());  // not long enough
  s.now_ms += 1;
  for (auto& w : s.workers) w.idle_ms += 1;
  auto d = p.step(s);
  CHECK(d.retire_workers.size() == 3);
  CHECK(d.submit_jobs == 0);
  CHECK(p.step(s).empty());  // asked already: not chosen twice
}

TEST_CASE("Adapt.AWorkerIdleForLessThanTheWaitIsKept") {
  AdaptPolicy p(options(0, 10));
  AdaptSnapshot s;
  s.jobs = {running("a"), running("b")};
  s.workers = {idle("a", 50'000), idle("b", 2'000)};
  s.now_ms = 100'000;
  p.step(s);
  s.now_ms += 20'000;
  s.workers = {idle("a", 70'000), idle("b", 5'000)};  // b worked meanwhile
  auto d = p.step(s);
  CHECK(d.retire_workers == std::vector<std::string>{"a-0"});
}

TEST_CASE("Adapt.NeverBelowTheMinimum") {
  AdaptPolicy p(options(2, 10));
  AdaptSnapshot s;
  s.jobs = {running("a"), running("b"), running("c"), running("d")};
  s.workers = {idle("a", 0), idle("b", 0), idle("c", 0), idle("d", 0)};
  s.now_ms = 100'000;
  p.step(s);
  s.now_ms += 60'000;
  for (auto& w : s.workers) w.idle_ms = 60'000;
  s.workers[0].nbytes = 500;  // a holds more: kept
  s.workers[3].nbytes = 300;
  auto d = p.step(s);
  CHECK(d.retire_workers == std::vector<std::string>{"b-0", "c-0"});
}

TEST_CASE("Adapt.TheLastWorkersHoldingResultsAreNotAllRetired") {
  AdaptPolicy p(options(0, 10));
  AdaptSnapshot s;
  s.jobs = {running("a"), running("b"), running("c")};
  s.workers = {idle("a", 0, 100), idle("b", 0, 700), idle("c", 0, 300)};
  s.now_ms = 100'000;
  p.step(s);
  s.now_ms += 60'000;
  for (auto& w : s.workers) w.idle_ms = 60'000;
  auto d = p.step(s);
  // Minimum 0, nothing to do: all could go, but their results need a worker that stays.
  CHECK(d.retire_workers == std::vector<std::string>{"a-0", "c-0"});
  // Once the client released its results, the last one goes too.
  s.jobs = {running("b")};
  s.workers = {idle("b", 120'000, 0)};
  s.now_ms += 60'000;
  CHECK(p.step(s).retire_workers == std::vector<std::string>{"b-0"});
}

TEST_CASE("Adapt.MinimumIsSubmittedAtOnce") {
  AdaptPolicy p(options(3, 10));
  AdaptSnapshot s;
  CHECK(p.step(s).submit_jobs == 3);
}

TEST_CASE("Adapt.PendingJobsAreCancelledFirstNewestFirst") {
  AdaptPolicy p(options(0, 10));
  AdaptSnapshot s;
  s.jobs = {running("a"), pending("old", 10), pending("new", 50)};
  s.workers = {idle("a", 100'000)};
  s.tasks_waiting = 0;
  s.now_ms = 100'000;
  p.step(s);
  s.now_ms += 10'000;
  auto d = p.step(s);
  CHECK(d.cancel_jobs == std::vector<std::string>{"new", "old"});
  CHECK(d.retire_workers == std::vector<std::string>{"a-0"});
}

TEST_CASE("Adapt.NoShrinkWithinTheCooldownOfAGrowth") {
  auto o = options(0, 10);
  o.scale_down_wait_ms = 0;
  o.cooldown_ms = 30'000;
  AdaptPolicy p(o);
  AdaptSnapshot s;
  s.now_ms = 1'000;
  s.tasks_waiting = 2;
  REQUIRE(p.step(s).submit_jobs == 2);
  s.tasks_waiting = 0;
  s.jobs = {pending("a", 1'000), pending("b", 1'000)};
  s.now_ms = 20'000;
  CHECK(p.step(s).empty());  // the load dipped, but the jobs were asked for 19 s ago
  s.now_ms = 31'000;
  CHECK(p.step(s).cancel_jobs.size() == 2);
}

TEST_CASE("Adapt.NoGrowthWithinTheCooldownOfAShrinkUnlessBelowTheMinimum") {
  auto o = options(1, 10);
  o.scale_down_wait_ms = 0;
  o.cooldown_ms = 30'000;
  AdaptPolicy p(o);
  AdaptSnapshot s;
  s.jobs = {running("a"), running("b")};
  s.workers = {idle("a", 1'000), idle("b", 1'000)};
  s.now_ms = 100'000;
  auto d = p.step(s);
  REQUIRE(d.retire_workers.size() == 1);
  // The load comes back at once: not within the cooldown.
  s.workers = {idle(d.retire_workers[0] == "a-0" ? "b" : "a", 0)};
  s.jobs = {running(s.workers[0].job)};
  s.tasks_waiting = 5;
  s.now_ms += 10'000;
  CHECK(p.step(s).submit_jobs == 0);
  // The last job ends (walltime): below the minimum, replaced at once, cooldown or not.
  s.jobs.clear();
  s.workers.clear();
  s.now_ms += 1'000;
  CHECK(p.step(s).submit_jobs == 1);
  s.now_ms += 30'000;
  s.jobs = {running("z")};
  CHECK(p.step(s).submit_jobs == 4);
}

TEST_CASE("Adapt.AJobWhoseWorkersAllLeaveIsReplacedWithoutWaitingForItToEnd") {
  // --lifetime: its workers retire on their own; the job ends only when they have gone.
  AdaptPolicy p(options(1, 10));
  AdaptSnapshot s;
  s.jobs = {running("a")};
  s.workers = {idle("a", 0)};
  s.workers[0].retiring = true;
  CHECK(p.step(s).submit_jobs == 1);
}

TEST_CASE("Adapt.WorkersCountedInWorkersAreRoundedUpToJobs") {
  auto o = options(3, 7);
  o.unit = AdaptOptions::Unit::workers;
  o.workers_per_job = 2;
  CHECK(o.minimum_jobs() == 2);
  CHECK(o.maximum_jobs() == 4);
  AdaptPolicy p(o);
  AdaptSnapshot s;
  s.tasks_waiting = 1000;
  CHECK(p.step(s).submit_jobs == 4);
}

TEST_CASE("Adapt.AStepOfLoadGrowsOnceAndShrinksOnceWithoutOscillating") {
  auto o = options(0, 8);
  o.max_pending_jobs = 100;  // only counting pending jobs as capacity keeps it from submitting again
  Sim sim(o);
  for (int t = 0; t < 100; ++t) sim.tick(t < 40 ? 50 : 0);
  CHECK(sim.direction_changes == 1);  // up, then down, never back
  CHECK(sim.grow_actions == 1);
  CHECK(sim.submitted == 8);
  CHECK(sim.cancelled == 0);
  CHECK(sim.retired == 8);
  CHECK(sim.jobs.empty());  // back to the minimum once idle
}

TEST_CASE("Adapt.ResultsStillHeldKeepOneJobAfterTheLoad") {
  auto o = options(0, 8);
  Sim sim(o);
  sim.nbytes_per_worker = 8;  // the client still holds its results
  for (int t = 0; t < 100; ++t) sim.tick(t < 40 ? 50 : 0);
  CHECK(sim.direction_changes == 1);
  CHECK(sim.retired == 7);
  CHECK(sim.jobs.size() == 1);  // it takes the others' results and stays
}

TEST_CASE("Adapt.AShortDipInTheLoadNeitherShrinksNorRegrows") {
  // High, 5 ticks of nothing (shorter than the wait), high again, then nothing: one growth, one
  // shrink at the end; without hysteresis it would shrink in the dip and grow again after it.
  auto o = options(0, 8);
  o.max_pending_jobs = 8;
  Sim sim(o);
  for (int t = 0; t < 100; ++t) sim.tick((t < 40 || (t >= 45 && t < 70)) ? 50 : 0);
  CHECK(sim.direction_changes == 1);
  CHECK(sim.grow_actions == 1);
  CHECK(sim.submitted == 8);
  CHECK(sim.jobs.empty());
}

TEST_CASE("Adapt.ALoadThatFlickersDoesNotFlap") {
  // On for 3 ticks, off for 3: workers are never idle for the wait, so nothing is retired and
  // nothing submitted beyond the first growth.
  auto o = options(0, 8);
  o.max_pending_jobs = 8;
  Sim sim(o);
  for (int t = 0; t < 100; ++t) sim.tick((t / 3) % 2 == 0 ? 40 : 0);
  CHECK(sim.submitted == 8);
  CHECK(sim.shrink_actions == 0);
  CHECK(sim.direction_changes == 0);
}

TEST_CASE("Adapt.ASmallerStepShrinksToTheNewLevelOnly") {
  auto o = options(0, 8);
  o.max_pending_jobs = 8;
  Sim sim(o);
  for (int t = 0; t < 100; ++t) sim.tick(t < 30 ? 8 : 3);
  CHECK(sim.direction_changes == 1);
  CHECK(sim.running_jobs() == 3);
  CHECK(sim.retired == 5);
}

TEST_CASE("Adapt.JobsEndedAtWalltimeAreReplacedWhileAdapting") {
  auto o = options(0, 4);
  o.max_pending_jobs = 4;
  Sim sim(o);
  sim.walltime_ms = 20'000;
  for (int t = 0; t < 100; ++t) sim.tick(100);
  CHECK(sim.walltime_ended >= 12);  // ~4 jobs per 23 s
  CHECK(sim.submitted == 4 + sim.walltime_ended);  // each one replaced, nothing more
  CHECK(sim.running_jobs() + sim.pending_jobs() == 4);
  CHECK(sim.shrink_actions == 0);
}

TEST_CASE("Adapt.JobsEndedAtWalltimeAreReplacedAtTheMinimumWhenIdle") {
  Sim sim(options(2, 4));
  sim.walltime_ms = 20'000;
  for (int t = 0; t < 100; ++t) sim.tick(0);
  CHECK(sim.walltime_ended >= 6);
  CHECK(sim.submitted == 2 + sim.walltime_ended);
  CHECK(sim.running_jobs() + sim.pending_jobs() == 2);
}

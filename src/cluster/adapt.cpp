// The adapt policy: target from the backlog, pending jobs as capacity, hysteresis and cooldown against flapping (adapt.hpp).
#include "cluster/adapt.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "scheduler/workers_to_close.hpp"

namespace dtask::cluster {

namespace {
std::size_t ceil_div(std::size_t a, std::size_t b) { return b == 0 ? a : (a + b - 1) / b; }
}  // namespace

std::size_t AdaptOptions::minimum_jobs() const {
  return unit == Unit::jobs ? minimum : ceil_div(minimum, std::max<std::size_t>(workers_per_job, 1));
}
std::size_t AdaptOptions::maximum_jobs() const {
  return unit == Unit::jobs ? maximum : ceil_div(maximum, std::max<std::size_t>(workers_per_job, 1));
}

AdaptPolicy::AdaptPolicy(AdaptOptions options) : opt_(std::move(options)) {}

std::size_t AdaptPolicy::target_jobs(const AdaptSnapshot& s) const {
  const std::size_t tasks = s.tasks_waiting + s.tasks_processing;
  double threads = 0;
  if (opt_.target_duration_ms != 0 && s.mean_task_ms != 0) {
    threads = static_cast<double>(tasks) * static_cast<double>(s.mean_task_ms) / static_cast<double>(opt_.target_duration_ms);
  } else {
    threads = static_cast<double>(tasks) / std::max(opt_.tasks_per_thread, 1e-9);
  }
  const auto threads_needed = static_cast<std::size_t>(std::ceil(threads));
  const std::size_t workers = ceil_div(threads_needed, std::max<std::size_t>(opt_.threads_per_worker, 1));
  const std::size_t jobs = ceil_div(workers, std::max<std::size_t>(opt_.workers_per_job, 1));
  const std::size_t lo = opt_.minimum_jobs();
  const std::size_t hi = std::max(opt_.maximum_jobs(), lo);
  return std::clamp(jobs, lo, hi);
}

AdaptDecision AdaptPolicy::step(const AdaptSnapshot& s) {
  AdaptDecision d;
  const std::uint64_t now = s.now_ms;
  // Jobs we asked to go that have ended are forgotten; the rest do not count as capacity.
  std::erase_if(closing_jobs_, [&](const std::string& id) {
    return std::none_of(s.jobs.begin(), s.jobs.end(), [&](const AdaptJob& j) { return j.id == id; });
  });
  // A running job all of whose workers are leaving (SIGTERM, --lifetime) is going too: it ends
  // when they have left, and its replacement must not wait for that.
  std::map<std::string, std::vector<const AdaptWorker*>> by_job;
  for (const auto& w : s.workers) {
    if (!w.job.empty()) by_job[w.job].push_back(&w);
  }
  std::vector<const AdaptJob*> alive;
  std::size_t pending = 0;
  for (const auto& j : s.jobs) {
    if (closing_jobs_.count(j.id)) continue;
    if (j.running) {
      auto it = by_job.find(j.id);
      if (it != by_job.end() && std::all_of(it->second.begin(), it->second.end(), [](auto* w) { return w->retiring; }))
        continue;
    } else {
      ++pending;
    }
    alive.push_back(&j);
  }
  const std::size_t capacity = alive.size();
  const std::size_t target = target_jobs(s);
  const std::size_t lo = opt_.minimum_jobs();
  const std::size_t hi = std::max(opt_.maximum_jobs(), lo);

  if (capacity < target) {
    excess_since_ms_.reset();
    const bool below_minimum = capacity < lo;
    const bool cooling = last_shrink_ms_ && now < *last_shrink_ms_ + opt_.cooldown_ms;
    if (cooling && !below_minimum) {
      d.why = "load calls for more jobs, but a shrink was less than the cooldown ago";
      return d;
    }
    const std::size_t want = below_minimum && cooling ? lo - capacity : target - capacity;
    const std::size_t room_pending = opt_.max_pending_jobs > pending ? opt_.max_pending_jobs - pending : 0;
    const std::size_t room_total = hi > capacity ? hi - capacity : 0;
    d.submit_jobs = std::min({want, room_pending, room_total});
    if (d.submit_jobs > 0) {
      last_grow_ms_ = now;
      d.why = "grow: " + std::to_string(capacity) + " jobs (" + std::to_string(pending) + " pending), target " +
              std::to_string(target);
    } else {
      d.why = "grow held: " + std::to_string(pending) + " jobs already pending";
    }
    return d;
  }
  if (capacity == target) {
    excess_since_ms_.reset();
    return d;
  }
  // capacity > target: shrink, but only once the excess has lasted and not right after a growth.
  if (!excess_since_ms_) excess_since_ms_ = now;
  if (now < *excess_since_ms_ + opt_.scale_down_wait_ms) return d;
  if (last_grow_ms_ && now < *last_grow_ms_ + opt_.cooldown_ms) return d;
  std::size_t excess = capacity - std::max(target, lo);
  // Pending jobs first, newest first: nothing runs there, and the oldest is the likeliest to start.
  std::vector<const AdaptJob*> queued;
  for (auto* j : alive) {
    if (!j->running) queued.push_back(j);
  }
  std::sort(queued.begin(), queued.end(), [](auto* a, auto* b) {
    return a->submitted_ms != b->submitted_ms ? a->submitted_ms > b->submitted_ms : a->id > b->id;
  });
  for (auto* j : queued) {
    if (excess == 0) break;
    d.cancel_jobs.push_back(j->id);
    closing_jobs_.insert(j->id);
    --excess;
  }
  // Then running jobs whose workers have all been idle long enough, cheapest to let go first.
  std::vector<scheduler::WorkerLoad> loads;
  for (auto* j : alive) {
    if (!j->running || closing_jobs_.count(j->id)) continue;
    auto it = by_job.find(j->id);
    if (it == by_job.end()) continue;  // no worker has joined yet
    const bool idle = std::all_of(it->second.begin(), it->second.end(), [&](auto* w) {
      return w->retiring || (w->processing == 0 && w->idle_ms >= opt_.scale_down_wait_ms);
    });
    if (!idle) continue;
    for (auto* w : it->second) loads.push_back({w->name, j->id, w->processing, w->nbytes, w->retiring});
  }
  auto groups = scheduler::groups_to_close(loads, excess);
  // Results need somewhere to go: a retiring worker hands what only it holds to one that stays
  // (Dask keeps a worker whose unique data has no recipient). So the last workers that hold
  // results are not all retired, whatever the minimum: the dearest group chosen stays.
  const auto chosen = [&](const std::string& name) {
    return std::any_of(groups.begin(), groups.end(), [&](const scheduler::GroupToClose& g) {
      return std::find(g.workers.begin(), g.workers.end(), name) != g.workers.end();
    });
  };
  while (!groups.empty()) {
    std::uint64_t bytes_going = 0;
    bool someone_stays = false;
    for (const auto& w : s.workers) {
      if (w.retiring) continue;
      if (chosen(w.name)) {
        bytes_going += w.nbytes;
      } else {
        someone_stays = true;
      }
    }
    if (someone_stays || bytes_going == 0) break;
    groups.pop_back();  // groups_to_close orders cheapest first: the last holds the most
  }
  for (auto& g : groups) {
    closing_jobs_.insert(g.group);
    for (auto& w : g.workers) d.retire_workers.push_back(std::move(w));
  }
  if (!d.empty()) {
    last_shrink_ms_ = now;
    d.why = "shrink: " + std::to_string(capacity) + " jobs, target " + std::to_string(target) + ": cancel " +
            std::to_string(d.cancel_jobs.size()) + " pending, retire " + std::to_string(d.retire_workers.size()) +
            " workers";
  }
  return d;
}

}  // namespace dtask::cluster

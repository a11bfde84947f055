// The scheduler's record of what happened (observatory.hpp): bounded stores, JSON for readers.
#include "scheduler/observatory.hpp"

#include <algorithm>

namespace dtask::scheduler {

using nlohmann::json;

namespace {
template <class T>
void push_bounded(std::deque<T>& d, T v, std::size_t max) {
  d.push_back(std::move(v));
  while (d.size() > max) d.pop_front();
}

// Tasks finished and failed, over every task name.
std::pair<std::uint64_t, std::uint64_t> summed(const std::vector<Observatory::Progress>& progress) {
  std::uint64_t done = 0, erred = 0;
  for (const auto& p : progress) {
    done += p.done;
    erred += p.erred;
  }
  return {done, erred};
}
}  // namespace

Observatory::WorkerSeen& Observatory::seen(const std::string& name) {
  auto [it, fresh] = worker_index_.try_emplace(name, static_cast<std::uint32_t>(workers_.size()));
  if (fresh) {
    workers_.emplace_back();
    workers_.back().name = name;
  }
  return workers_[it->second];
}

std::uint32_t Observatory::name_index(const std::string& name) {
  auto [it, fresh] = name_index_.try_emplace(name, static_cast<std::uint32_t>(names_.size()));
  if (fresh) names_.push_back(name);
  return it->second;
}

void Observatory::worker_joined(const std::string& name, const std::string& host, int nthreads, std::uint64_t now) {
  std::uint64_t now_ms = wall(now);
  WorkerSeen& w = seen(name);
  if (w.first_seen_ms == 0) w.first_seen_ms = now_ms;
  w.host = host;
  w.nthreads = nthreads;
  w.last_seen_ms = now_ms;
  w.alive = true;
  gone_order_.erase(std::remove(gone_order_.begin(), gone_order_.end(), worker_index_[name]), gone_order_.end());
}

void Observatory::worker_gone(const std::string& name, const std::string& how, std::uint64_t now) {
  std::uint64_t now_ms = wall(now);
  WorkerSeen& w = seen(name);
  w.alive = false;
  w.last_seen_ms = now_ms;
  push_bounded(w.log, protocol::LogLine{now_ms * 1000, how.rfind("died", 0) == 0 ? "error" : "info", "scheduler: worker " + how},
               kMaxLogLines);
  gone_order_.push_back(worker_index_[name]);
  // Only the names' logs are dropped (their slots stay, indexes in runs_ remain valid).
  while (gone_order_.size() > kMaxGoneWorkers) {
    workers_[gone_order_.front()].log.clear();
    gone_order_.pop_front();
  }
}

void Observatory::on_telemetry(const std::string& worker, const protocol::Telemetry& t,
                               const std::function<std::string(protocol::TaskId)>& key_of, std::uint64_t now) {
  seen(worker);
  std::uint32_t wi = worker_index_.at(worker);
  WorkerSeen& w = workers_[wi];
  w.last_seen_ms = wall(now);
  w.busy_us += t.busy_us;
  for (const auto& r : t.runs) {
    Run run{wi, r.thread, name_index(r.func), key_of(r.task), static_cast<double>(r.start_us) / 1000.0,
            static_cast<double>(r.stop_us) / 1000.0, r.erred};
    if (runs_.size() >= kMaxRuns) {
      runs_.pop_front();
      ++runs_dropped_;
    }
    runs_.push_back(std::move(run));
  }
  runs_dropped_ += t.runs_dropped;
  for (const auto& f : t.totals) {
    NameTotals& n = by_name_[f.func];
    n.runs += f.count;
    n.erred_runs += f.erred;
    n.total_us += f.total_us;
    n.max_us = std::max(n.max_us, f.max_us);
    w.tasks_done += f.count;
    task_us_total_ += f.total_us;
  }
  for (const auto& x : t.transfers) {
    Transfer& tr = transfers_[{worker, x.peer}];
    tr.count += x.count;
    tr.bytes += x.bytes;
    tr.total_us += x.total_us;
    transfers_total_ += x.count;
    transfer_bytes_total_ += x.bytes;
  }
  for (const auto& line : t.log) push_bounded(w.log, line, kMaxLogLines);
}

void Observatory::on_error(const std::string& name, const std::string& key, const std::string& worker,
                           const std::string& message, std::uint64_t now) {
  push_bounded(errors_, Error{wall(now), name, key, worker, message}, kMaxErrors);
}

void Observatory::sample_throughput(std::uint64_t now, std::uint64_t finished_total) {
  std::uint64_t now_ms = wall(now);
  if (sampled_ms_ != 0 && now_ms > sampled_ms_) {
    double rate = static_cast<double>(finished_total - sampled_finished_) * 1000.0 / static_cast<double>(now_ms - sampled_ms_);
    throughput_.emplace_back(now_ms, rate);
    if (throughput_.size() > kMaxThroughputPoints) {
      // Halve the resolution of the oldest half instead of losing the job's beginning.
      std::deque<std::pair<std::uint64_t, double>> thinned;
      std::size_t half = throughput_.size() / 2;
      for (std::size_t i = 0; i < half; i += 2) {
        double r = i + 1 < half ? (throughput_[i].second + throughput_[i + 1].second) / 2 : throughput_[i].second;
        thinned.emplace_back(throughput_[std::min(i + 1, half - 1)].first, r);
      }
      for (std::size_t i = half; i < throughput_.size(); ++i) thinned.push_back(throughput_[i]);
      throughput_ = std::move(thinned);
    }
  }
  if (now_ms >= sampled_ms_) {
    sampled_ms_ = now_ms;
    sampled_finished_ = finished_total;
  }
}

json Observatory::run_json(const Run& r) const {
  return json{{"worker", workers_[r.worker].name}, {"thread", r.thread}, {"name", names_[r.name]}, {"key", r.key},
              {"start_ms", r.start_ms}, {"stop_ms", r.stop_ms}, {"erred", r.erred}};
}

void Observatory::fill_snapshot(json& snap, const std::vector<Progress>& progress, std::uint64_t now) const {
  std::uint64_t now_ms = wall(now);
  const auto [done, erred] = summed(progress);
  json stream = json::array();
  double from = static_cast<double>(now_ms) - static_cast<double>(kSnapshotStreamMs);
  // The window's runs, thinned evenly to at most kSnapshotRuns: a dense stream stays a picture of
  // the whole 10 s, and the page (often on the same busy node) parses and draws little.
  std::size_t first = runs_.size();
  while (first > 0 && runs_[first - 1].stop_ms >= from) --first;
  const std::size_t n = runs_.size() - first;
  const std::size_t stride = n > kSnapshotRuns ? (n + kSnapshotRuns - 1) / kSnapshotRuns : 1;
  for (std::size_t i = runs_.size(); i > first && stream.size() < kSnapshotRuns; i -= std::min(stride, i - first)) {
    stream.push_back(run_json(runs_[i - 1]));
  }
  std::reverse(stream.begin(), stream.end());
  snap["task_stream"] = std::move(stream);
  snap["task_stream_dropped"] = runs_dropped_;
  json tp = json::array();
  for (const auto& [t, r] : throughput_) {
    if (t + kThroughputWindowMs >= now_ms) tp.push_back(json::array({t, r}));
  }
  snap["throughput"] = std::move(tp);
  json errs = json::array();
  std::size_t e0 = errors_.size() > kSnapshotErrors ? errors_.size() - kSnapshotErrors : 0;
  for (std::size_t i = e0; i < errors_.size(); ++i) {
    const Error& e = errors_[i];
    errs.push_back({{"time_ms", e.time_ms}, {"name", e.name}, {"key", e.key}, {"worker", e.worker}, {"message", e.message}});
  }
  snap["errors"] = std::move(errs);
  json& totals = snap["totals"];
  totals["done"] = done;
  totals["erred"] = erred;
  totals["task_seconds"] = static_cast<double>(task_us_total_) / 1e6;
  totals["transfers"] = transfers_total_;
  totals["transfer_bytes"] = transfer_bytes_total_;
  // Workers' own view (telemetry): their tasks and busy time, by name, for the workers table.
  if (snap.contains("workers")) {
    for (auto& w : snap["workers"]) {
      auto it = worker_index_.find(w.value("name", std::string()));
      if (it == worker_index_.end()) continue;
      w["tasks_done"] = workers_[it->second].tasks_done;
      w["busy_s"] = static_cast<double>(workers_[it->second].busy_us) / 1e6;
    }
  }
}

json Observatory::report(std::uint64_t now, std::uint64_t since_ms, const json& scheduler,
                         const std::vector<Progress>& progress) const {
  std::uint64_t now_ms = wall(now);
  json r;
  r["version"] = 1;
  r["started_ms"] = started_ms_;
  r["finished_ms"] = now_ms;
  r["since_ms"] = since_ms;
  r["time_ms"] = now_ms;
  r["scheduler"] = scheduler;
  json by_name = json::array();
  const auto [done, erred] = summed(progress);
  for (const auto& p : progress) {  // the scheduler's names in submission order, the workers' times beside
    auto it = by_name_.find(p.name);
    NameTotals n = it == by_name_.end() ? NameTotals{} : it->second;
    by_name.push_back({{"name", p.name}, {"done", p.done}, {"erred", p.erred}, {"runs", n.runs},
                       {"task_seconds", static_cast<double>(n.total_us) / 1e6},
                       {"max_s", static_cast<double>(n.max_us) / 1e6}});
  }
  r["by_name"] = std::move(by_name);
  json ws = json::array();
  for (const auto& w : workers_) {
    ws.push_back({{"name", w.name}, {"host", w.host}, {"nthreads", w.nthreads}, {"first_seen_ms", w.first_seen_ms},
                  {"last_seen_ms", w.last_seen_ms}, {"alive", w.alive}, {"tasks_done", w.tasks_done},
                  {"busy_s", static_cast<double>(w.busy_us) / 1e6}});
  }
  r["workers"] = std::move(ws);
  json tr = json::array();
  for (const auto& [k, t] : transfers_) {
    tr.push_back({{"worker", k.first}, {"peer", k.second}, {"count", t.count}, {"bytes", t.bytes},
                  {"seconds", static_cast<double>(t.total_us) / 1e6}});
  }
  r["transfers"] = std::move(tr);
  json stream = json::array();
  for (const auto& run : runs_) {
    if (run.stop_ms >= static_cast<double>(since_ms)) stream.push_back(run_json(run));
  }
  r["task_stream"] = std::move(stream);
  r["task_stream_dropped"] = runs_dropped_;
  json tp = json::array();
  for (const auto& [t, rate] : throughput_) {
    if (t >= since_ms) tp.push_back(json::array({t, rate}));
  }
  r["throughput"] = std::move(tp);
  json errs = json::array();
  for (const auto& e : errors_) {
    if (e.time_ms < since_ms) continue;
    errs.push_back({{"time_ms", e.time_ms}, {"name", e.name}, {"key", e.key}, {"worker", e.worker}, {"message", e.message}});
  }
  r["errors"] = std::move(errs);
  r["totals"] = {{"done", done}, {"erred", erred}, {"task_seconds", static_cast<double>(task_us_total_) / 1e6},
                 {"transfers", transfers_total_}, {"transfer_bytes", transfer_bytes_total_}};
  return r;
}

json Observatory::logs(std::size_t n) const {
  json out = json::object();
  for (const auto& w : workers_) {
    json lines = json::array();
    std::size_t first = w.log.size() > n ? w.log.size() - n : 0;
    for (std::size_t i = first; i < w.log.size(); ++i) {
      lines.push_back({{"time_us", w.log[i].time_us}, {"level", w.log[i].level}, {"text", w.log[i].text}});
    }
    out[w.name] = {{"alive", w.alive}, {"host", w.host}, {"lines", std::move(lines)}};
  }
  return json{{"workers", std::move(out)}};
}

}  // namespace dtask::scheduler

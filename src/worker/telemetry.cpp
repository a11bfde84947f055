// What a worker tells the scheduler for the dashboard and the report (see telemetry.hpp).
//
// Cost: record_run is one lock and a few stores. The run's func string is copied into the sample
// only while the sample is not full or when the run replaces a sampled one (the copy reuses that
// slot's buffer); the per-function totals are found through last_totals_ without a map lookup
// when the function is the previous one's. drain() (the loop thread, once per heartbeat) moves
// everything out and allocates the next sample's buffer on the next record.
#include "worker/telemetry.hpp"

#include <algorithm>
#include <chrono>

namespace dtask::worker {

TelemetryRecorder::TelemetryRecorder(std::shared_ptr<log::LogTap> tap) : tap_(std::move(tap)) {}

void TelemetryRecorder::record_run(protocol::TaskId task, const std::string& func, std::uint64_t start_us,
                                   std::uint64_t stop_us, std::uint32_t thread, bool erred) {
  const std::uint64_t took = stop_us > start_us ? stop_us - start_us : 0;
  std::lock_guard lock(mu_);
  busy_us_ += took;
  protocol::FuncTotals* t = last_totals_;
  if (t == nullptr || t->func != func) {
    auto [it, fresh] = totals_.try_emplace(func);
    if (fresh) it->second.func = func;
    t = last_totals_ = &it->second;
  }
  ++t->count;
  t->erred += erred ? 1 : 0;
  t->total_us += took;
  t->max_us = std::max(t->max_us, took);

  ++runs_seen_;
  if (runs_.size() < kMaxRunsPerMessage) {
    if (runs_.capacity() == 0) runs_.reserve(kMaxRunsPerMessage);
    runs_.push_back(protocol::TaskRun{task, func, start_us, stop_us, thread, erred});
    return;
  }
  // Reservoir sampling: the n-th run replaces a random kept one with probability k/n.
  ++runs_dropped_;
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const auto j = static_cast<std::uint64_t>((static_cast<unsigned __int128>(rng_) * runs_seen_) >> 64);
  if (j < kMaxRunsPerMessage) {
    auto& r = runs_[j];
    r.task = task;
    r.func = func;
    r.start_us = start_us;
    r.stop_us = stop_us;
    r.thread = thread;
    r.erred = erred;
  }
}

void TelemetryRecorder::record_fetch(const std::string& peer_address, std::uint64_t count, std::uint64_t bytes,
                                     std::uint64_t micros) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = transfers_.try_emplace(peer_address);
  if (fresh) it->second.peer = peer_address;
  it->second.count += count;
  it->second.bytes += bytes;
  it->second.total_us += micros;
}

std::optional<protocol::Telemetry> TelemetryRecorder::drain() {
  std::vector<log::LogTap::Line> lines;
  if (tap_) lines = tap_->take();  // the tap's own lock, not nested in ours
  protocol::Telemetry t;
  {
    std::lock_guard lock(mu_);
    if (runs_seen_ == 0 && transfers_.empty() && busy_us_ == 0 && lines.empty()) return std::nullopt;
    t.runs = std::move(runs_);
    runs_ = {};
    t.runs_dropped = runs_dropped_;
    t.totals.reserve(totals_.size());
    for (auto& [name, tot] : totals_) t.totals.push_back(std::move(tot));
    t.transfers.reserve(transfers_.size());
    for (auto& [peer, tr] : transfers_) t.transfers.push_back(std::move(tr));
    t.busy_us = busy_us_;
    totals_.clear();
    last_totals_ = nullptr;
    transfers_.clear();
    runs_dropped_ = runs_seen_ = busy_us_ = 0;
  }
  // The sample is in replacement order: the stream reads it by time.
  std::sort(t.runs.begin(), t.runs.end(), [](const auto& a, const auto& b) { return a.start_us < b.start_us; });
  t.log.reserve(lines.size());
  for (auto& l : lines) t.log.push_back(protocol::LogLine{l.time_us, std::move(l.level), std::move(l.text)});
  return t;
}

std::uint64_t wall_us() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace dtask::worker

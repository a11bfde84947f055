// The worker's memory rules: spilling results to disk, reading them back on demand, pausing, reporting (see docs/worker.md "Memory").
//
// Part of WorkerState (pure: the spill files are written and read by the loop's SpillFiles from
// WorkerOutbox::spill requests, and their completions come back through on_spill). With
// memory_limit 0 none of this runs: after_put returns at its first test and tick skips
// check_memory.
#include <algorithm>

#include "worker/worker_state.hpp"

namespace dtask::worker {

using namespace protocol;

namespace {
// A worker that keeps pausing for memory warns once in this long (the others log at debug).
constexpr std::uint64_t kPauseWarnEveryMs = 30000;
std::uint64_t mib(std::uint64_t b) { return b >> 20; }
std::uint64_t less_or_zero(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }
}  // namespace

std::uint64_t WorkerState::target_bytes() const {
  const double t = config_.memory_thresholds.target > 0 ? config_.memory_thresholds.target : 1.0;
  return static_cast<std::uint64_t>(t * static_cast<double>(config_.memory_limit));
}

void WorkerState::after_put(std::uint64_t id, WorkerOutbox& out) {
  if (config_.memory_limit == 0) return;
  const std::uint64_t target = target_bytes();
  if (store_.memory_bytes() <= target) return;
  if (disk_full_ && now_ < disk_retry_at_) return;  // check_memory tries again at disk_retry_at_
  // One result bigger than the target goes to disk itself, at once (the others stay).
  const auto* e = store_.find(id);
  if (e && e->where == DataStore::Where::memory && e->nbytes > target && e->data.use_count() == 1 &&
      store_.start_write(id)) {
    out.spill.push_back(WorkerOutbox::Spill{WorkerOutbox::Spill::Kind::write, id, e->tag, e->data});
  }
  spill(less_or_zero(store_.memory_bytes(), target), out);
  if (!paused_ && disk_behind()) set_paused(true, out);
}

std::size_t WorkerState::fetch_budget() const {
  if (config_.memory_limit == 0) return SIZE_MAX;
  const auto& t = config_.memory_thresholds;
  const double upto = std::max(t.spill, t.target) > 0 ? std::max(t.spill, t.target) : 1.0;
  const bool room = store_.held_bytes() + store_.reading_bytes() <
                    static_cast<std::uint64_t>(upto * static_cast<double>(config_.memory_limit));
  return room ? 4 : 1;
}

bool WorkerState::disk_behind() const {
  // The writes out hold more than the band between target and spill (at least 5 % of the limit):
  // results come faster than the disk takes them, and each task started now adds to that.
  const auto& t = config_.memory_thresholds;
  const double band = std::max(t.spill - t.target, 0.05);
  return store_.writing_bytes() > static_cast<std::uint64_t>(band * static_cast<double>(config_.memory_limit));
}

void WorkerState::spill(std::uint64_t bytes, WorkerOutbox& out) {
  if (bytes == 0) return;
  for (std::uint64_t id : store_.pick_to_spill(bytes)) {
    const auto* e = store_.find(id);
    out.spill.push_back(WorkerOutbox::Spill{WorkerOutbox::Spill::Kind::write, id, e->tag, e->data});
  }
}

void WorkerState::restore(std::uint64_t id, WorkerOutbox& out) {
  if (std::find(restore_queue_.begin(), restore_queue_.end(), id) == restore_queue_.end()) restore_queue_.push_back(id);
  pump_restores(out);
}

void WorkerState::pump_restores(WorkerOutbox& out) {
  // Reading everything asked for at once (a reduction over spilled results asks for all of
  // them) would bring it all back into memory: the reads are paced by memory instead.
  while (!restore_queue_.empty()) {
    const std::uint64_t id = restore_queue_.front();
    const auto* e = store_.find(id);
    if (!e || e->where != DataStore::Where::disk) {
      restore_queue_.pop_front();  // released, or read back already
      continue;
    }
    // Up to the spill threshold: what comes back pushes older results out, down to target.
    const auto& t = config_.memory_thresholds;
    const double upto = std::max(t.spill, t.target) > 0 ? std::max(t.spill, t.target) : 1.0;
    const bool fits = store_.held_bytes() + store_.reading_bytes() + e->nbytes <=
                      static_cast<std::uint64_t>(upto * static_cast<double>(config_.memory_limit));
    const bool nothing_else = store_.reading_bytes() == 0 && exec_.idle() && ready_jobs_.empty();
    if (!fits && !nothing_else) return;  // a completion, a write or a release calls again
    restore_queue_.pop_front();
    const std::uint64_t tag = store_.start_read(id);
    out.spill.push_back(WorkerOutbox::Spill{WorkerOutbox::Spill::Kind::read, id, tag, nullptr});
  }
}

void WorkerState::drop_result(std::uint64_t id, WorkerOutbox& out) {
  awaiting_disk_.erase(id);
  auto gone = store_.erase(id);
  if (!gone) return;
  if (gone->where != DataStore::Where::memory) {
    // Its file, made or being made (the I/O thread does this after a write that is out).
    out.spill.push_back(WorkerOutbox::Spill{WorkerOutbox::Spill::Kind::remove, id, 0, nullptr});
  }
  if (gone->data) freed_since_trim_ += gone->nbytes;
  // Asked to be read back but not read yet: who waits hears now (a read out reports on its own).
  if (gone->where == DataStore::Where::disk && restores_.count(id)) finish_restore(id, out);
  if (freed_since_trim_ >= kTrimThreshold) {
    out.trim_memory = true;
    freed_since_trim_ = 0;
  }
}

void WorkerState::on_spill(SpillDone d, WorkerOutbox& out) {
  if (d.kind == SpillDone::Kind::written) {
    auto await = awaiting_disk_.find(d.id);
    if (d.ok) {
      if (auto freed = store_.written(d.id, d.tag, d.stored)) {
        freed_since_trim_ += *freed;
        if (freed_since_trim_ >= kTrimThreshold) {
          out.trim_memory = true;
          freed_since_trim_ = 0;
        }
        if (disk_full_) {
          disk_full_ = false;
          if (config_.log) config_.log->info("spilling to disk works again");
        }
        if (await != awaiting_disk_.end()) {
          out.to_scheduler.push_back(std::move(await->second));
          awaiting_disk_.erase(await);
        }
        // Paused only because the disk was behind: resume as soon as it caught up.
        if (paused_ && !disk_behind() && !disk_full_ &&
            !judge_memory(config_.memory_thresholds, config_.memory_limit,
                          MemorySample{store_.memory_bytes(), process_memory_}, paused_).pause) {
          set_paused(false, out);
        }
      }
      return;
    }
    if (!store_.write_failed(d.id, d.tag)) return;  // released meanwhile
    if (await != awaiting_disk_.end()) {
      // Bigger than the limit and the disk does not take it: it fits nowhere.
      const std::uint64_t nbytes = store_.find(d.id)->nbytes;
      awaiting_disk_.erase(await);
      drop_result(d.id, out);
      out.to_scheduler.push_back(TaskFailed{
          TaskId{d.id}, "the result (" + std::to_string(mib(nbytes)) + " MiB) is bigger than the worker's memory_limit (" +
                            std::to_string(mib(config_.memory_limit)) + " MiB) and could not be spilled to disk: " +
                            d.error});
      return;
    }
    if (!disk_full_ && config_.log) {
      config_.log->warn("worker '{}': {}; keeping results in memory and pausing until spilling works again",
                        config_.name, d.error);
    }
    disk_full_ = true;
    disk_retry_at_ = now_ + kSpillRetryMs;
    set_paused(true, out);
    return;
  }
  // Read back.
  if (d.ok) store_.read_back(d.id, d.tag, std::move(d.payload));
  else if (store_.read_failed(d.id, d.tag) && config_.log) config_.log->error("lost a spilled result: {}", d.error);
  if (store_.contains(d.id) && !store_.find(d.id)->data) {
    // Released, stored and spilled again meanwhile: read that one.
    if (restores_.count(d.id)) restore(d.id, out);
    return;
  }
  finish_restore(d.id, out);
  after_put(d.id, out);
  pump_restores(out);
}

void WorkerState::finish_restore(std::uint64_t id, WorkerOutbox& out) {
  auto rit = restores_.find(id);
  if (rit == restores_.end()) return;
  Restore waiting = std::move(rit->second);
  restores_.erase(rit);
  const auto* here = store_.get(id);
  std::shared_ptr<const Payload> data = here ? *here : nullptr;
  for (TaskId t : waiting.tasks) {
    auto pit = pending_.find(t.value);
    if (pit == pending_.end()) continue;
    if (!data) {
      out.to_scheduler.push_back(FetchFailed{t, TaskId{id}});
      pending_.erase(pit);
      continue;
    }
    pit->second.pinned.push_back(data);
    if (pit->second.missing > 0 && --pit->second.missing == 0) submit(pit->second, out);
  }
  for (std::uint64_t g : waiting.gets) {
    auto git = gets_.find(g);
    if (git == gets_.end()) continue;
    for (auto& item : git->second.reply.items) {
      if (item.task.value != id) continue;
      if (data) item.data = *data;
      else item.found = false;
    }
    if (--git->second.missing == 0) {
      out.reply(git->second.from, std::move(git->second.reply));
      gets_.erase(git);
    }
  }
}

void WorkerState::check_memory(std::uint64_t now, WorkerOutbox& out) {
  if (!restore_queue_.empty()) pump_restores(out);
  const MemorySample sample{store_.memory_bytes(), process_memory_};
  const MemoryVerdict v = judge_memory(config_.memory_thresholds, config_.memory_limit, sample, paused_);
  // Nothing left to spill (or nothing over target): a full disk does not matter any more.
  if (disk_full_ && store_.memory_bytes() <= target_bytes()) disk_full_ = false;
  if (!disk_full_ || now >= disk_retry_at_) {
    if (disk_full_) disk_retry_at_ = now + kSpillRetryMs;
    // Writes out already will free their bytes: only what they do not cover.
    spill(less_or_zero(v.spill_bytes, store_.writing_bytes()), out);
  }
  set_paused(v.pause || disk_full_ || disk_behind(), out);
  // The heartbeat's report: only when something moved enough to matter.
  if (now >= last_beat_ + heartbeat_ms_ / 2) {
    const MemoryReport r = memory_report();
    const std::uint64_t step = std::max(kMemoryReportStep, config_.memory_limit / 100);
    auto moved = [&](std::uint64_t a, std::uint64_t b) { return (a > b ? a - b : b - a) > step; };
    if (moved(r.held, reported_.held) || moved(r.spilled, reported_.spilled) || moved(r.process, reported_.process) ||
        r.spilled_count != reported_.spilled_count) {
      reported_ = r;
      out.to_scheduler.push_back(r);
    }
  }
}

void WorkerState::defer(Pending& p) {
  if (p.deferred) return;
  p.deferred = true;
  p.pinned.clear();
  resume_.push_back(p.msg.task);
}

void WorkerState::set_paused(bool paused, WorkerOutbox& out) {
  if (paused == paused_) return;
  paused_ = paused;
  exec_.set_paused(paused);
  if (paused) {
    // Jobs queued at the executor hold their inputs in memory: back here until the resume.
    for (auto& [id, p] : pending_) {
      if (p.submitted && exec_.withdraw(p.msg.task)) {
        p.submitted = false;
        defer(p);
      }
    }
  } else {
    auto ready = std::move(resume_);
    resume_.clear();
    for (TaskId t : ready) {
      auto it = pending_.find(t.value);
      if (it == pending_.end() || !it->second.deferred) continue;
      it->second.deferred = false;
      if (!it->second.submitted && it->second.missing == 0) submit(it->second, out);
    }
  }
  if (config_.log) {
    const MemoryReport r = memory_report();
    if (paused) {
      // Memory over the pause threshold (or a failed disk) is worth a warning, once per
      // kPauseWarnEveryMs; a pause only while spill writes catch up is routine back-pressure.
      const double pause = config_.memory_thresholds.pause;
      const std::uint64_t measured = process_memory_ ? process_memory_ : store_.memory_bytes();
      const bool over = pause > 0 && static_cast<double>(measured) > pause * static_cast<double>(config_.memory_limit);
      const bool loud = (over || disk_full_) && (!pause_warned_ || now_ >= pause_warned_at_ + kPauseWarnEveryMs);
      if (loud) {
        pause_warned_ = true;
        pause_warned_at_ = now_;
      }
      config_.log->log(loud ? spdlog::level::warn : spdlog::level::debug,
                       "worker '{}': paused: process memory {} MiB, results {} MiB in memory and {} MiB spilled, "
                       "memory_limit {} MiB{}",
                       config_.name, mib(r.process), mib(r.held), mib(r.spilled), mib(r.limit),
                       disk_full_ ? " (spilling to disk failed)"
                       : over     ? ""
                                  : " (waiting for spill writes to catch up)");
    } else {
      config_.log->debug("worker '{}': resumed: process memory {} MiB, results {} MiB in memory", config_.name,
                         mib(r.process), mib(r.held));
    }
  }
  reported_ = memory_report();
  out.to_scheduler.push_back(reported_);
}

MemoryReport WorkerState::memory_report() const {
  MemoryReport r;
  r.held = store_.held_bytes();
  r.spilled = store_.disk_bytes();
  r.spilled_count = store_.disk_count();
  r.process = process_memory_;
  r.limit = config_.memory_limit;
  r.paused = paused_;
  return r;
}

}  // namespace dtask::worker

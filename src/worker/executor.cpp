// A worker's executor threads: run ready tasks by priority within the declared resources.
#include "worker/executor.hpp"

#include <chrono>

#include <dtask/worker_context.hpp>

namespace dtask::worker {

namespace {
thread_local std::string t_worker_name;
// The name of the function this thread ran last, for the telemetry: kept per thread so a run
// costs no allocation (the entry's name only changes when the function does).
thread_local const dtask_task_v1* t_last_entry = nullptr;
thread_local std::string t_last_func;
}  // namespace

Executor::Executor(int nthreads, protocol::Resources available, std::string worker_name,
                   std::function<void()> on_complete, std::shared_ptr<RunningBoard> board,
                   std::shared_ptr<TelemetryRecorder> telemetry)
    : on_complete_(std::move(on_complete)),
      worker_name_(std::move(worker_name)),
      nthreads_(nthreads),
      board_(board ? std::move(board) : RunningBoard::make_private(static_cast<std::size_t>(nthreads) + 1)),
      telemetry_(std::move(telemetry)) {
  for (const auto& [name, amount] : available) available_[name] += amount;
  for (int i = 0; i < nthreads; ++i) threads_.emplace_back([this, i] { run(static_cast<std::size_t>(i)); });
}

Executor::~Executor() { shutdown(std::chrono::milliseconds(2000)); }

void Executor::submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    Order o{job.priority, seq_++};
    index_[job.id.value] = o;
    ready_.emplace(o, std::move(job));
  }
  cv_.notify_one();
}

bool Executor::withdraw(protocol::TaskId id) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(id.value);
  if (it == index_.end()) return false;
  ready_.erase(it->second);
  index_.erase(it);
  return true;
}

std::vector<Completion> Executor::take_completions() {
  std::lock_guard lock(mutex_);
  std::vector<Completion> out(std::make_move_iterator(completions_.begin()), std::make_move_iterator(completions_.end()));
  completions_.clear();
  return out;
}

std::size_t Executor::queued() const {
  std::lock_guard lock(mutex_);
  return ready_.size();
}

void Executor::pause(bool paused) {
  {
    std::lock_guard lock(mutex_);
    paused_ = paused;
  }
  if (!paused) cv_.notify_all();
}

bool Executor::idle() const {
  std::lock_guard lock(mutex_);
  return ready_.empty() && running_ == 0;
}

Completion Executor::invoke(Job& job, std::size_t slot) {
  detail::Call call;
  call.fn = job.entry->fn;
  call.args = std::span<const detail::CallArg>(job.args.data(), job.args.size());
  board_->start(slot, job.id);  // if the task kills the process, the supervisor reads this
  const std::uint64_t start_us = wall_us();
  const auto start = std::chrono::steady_clock::now();
  job.entry->invoke(reinterpret_cast<dtask_call*>(&call));
  const auto took = std::chrono::steady_clock::now() - start;
  board_->end(slot);
  const auto run_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
  const auto thread = static_cast<std::uint32_t>(slot);
  if (telemetry_ && job.id != kNoTask) {
    if (t_last_entry != job.entry) {
      t_last_entry = job.entry;
      t_last_func = job.entry->name ? job.entry->name : "";
    }
    // stop from the steady clock's duration: one wall-clock read per run, and a wall-clock step
    // during the run does not make it negative.
    telemetry_->record_run(job.id, t_last_func, start_us, start_us + run_ns / 1000, thread, !call.ok);
  }
  return Completion{job.id,    call.ok,  std::move(call.result), std::move(call.error), job.entry, run_ns,
                    start_us, thread};
}

Completion Executor::run_here(Job job) {
  if (t_worker_name != worker_name_) t_worker_name = worker_name_;  // get_worker_name() in the task
  {
    std::lock_guard lock(mutex_);
    ++running_;
  }
  // One run_here() at a time (the loop's owner; loop_takeover.hpp): the slot after the threads'.
  Completion c = invoke(job, static_cast<std::size_t>(nthreads_));
  bool waiting_work;
  {
    std::lock_guard lock(mutex_);
    --running_;
    waiting_work = !ready_.empty();
  }
  // A place is free again. Only worth a wake-up if work waited for it: waking an idle executor
  // thread for nothing would cost the very hand-off that running here saves.
  if (waiting_work) cv_.notify_one();
  idle_cv_.notify_all();
  return c;
}

void Executor::complete_elsewhere(Completion c) {
  {
    std::lock_guard lock(mutex_);
    completions_.push_back(std::move(c));
  }
  on_complete_();
}

bool Executor::fits(const Job& j) const {
  for (const auto& [name, amount] : j.resources) {
    auto it = available_.find(name);
    if (it == available_.end() || it->second < amount) return false;
  }
  return true;
}

void Executor::run(std::size_t slot) {
  t_worker_name = worker_name_;
  while (true) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      auto pick = ready_.end();
      cv_.wait(lock, [&] {
        if (stop_) return true;
        if (running_ >= nthreads_) return false;  // a run_here() holds the free place
        if (paused_) return false;
        for (auto it = ready_.begin(); it != ready_.end(); ++it) {
          if (fits(it->second)) {
            pick = it;
            return true;
          }
        }
        return false;
      });
      if (stop_) return;
      job = std::move(pick->second);
      index_.erase(job.id.value);
      ready_.erase(pick);
      for (const auto& [name, amount] : job.resources) available_[name] -= amount;
      ++running_;
    }
    Completion c = invoke(job, slot);
    bool stopping = false;
    {
      std::lock_guard lock(mutex_);
      stopping = stop_;
      if (!stopping) completions_.push_back(std::move(c));
      for (const auto& [name, amount] : job.resources) available_[name] += amount;
      --running_;
    }
    if (!job.resources.empty()) cv_.notify_all();
    idle_cv_.notify_all();
    // After shutdown nobody reads completions, and the owner of on_complete_ may be gone.
    if (stopping) return;
    on_complete_();
  }
}

bool Executor::shutdown(std::chrono::milliseconds grace) {
  {
    std::unique_lock lock(mutex_);
    if (stop_ && threads_.empty()) return !left_behind_;
    stop_ = true;
    ready_.clear();
    index_.clear();
  }
  cv_.notify_all();
  bool all_idle;
  {
    std::unique_lock lock(mutex_);
    all_idle = idle_cv_.wait_for(lock, grace, [&] { return running_ == 0; });
  }
  for (auto& t : threads_) {
    if (all_idle) t.join();
    else t.detach();  // a task that will not finish must not hold the shutdown hostage
  }
  threads_.clear();
  left_behind_ = !all_idle;
  return all_idle;
}

}  // namespace dtask::worker

namespace dtask {
std::string get_worker_name() { return worker::t_worker_name; }
}  // namespace dtask

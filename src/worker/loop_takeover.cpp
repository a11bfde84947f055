// Fast path "loop takeover": the named ownership of the loop and the standby thread (see loop_takeover.hpp).
#include "worker/loop_takeover.hpp"

namespace dtask::worker {

LoopTakeover::~LoopTakeover() {
  // finish() joins the standby thread; this covers a run() that ended by an exception.
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) thread_.detach();
    else thread_.join();
  }
}

std::uint64_t LoopTakeover::begin_run() {
  // Only the loop's owner gets here, and while it is loop_thread the standby writes nothing.
  const std::uint64_t run = unpack(state_.load()).run + 1;
  state_.store(pack({LoopOwner::task_running_here, run}));
  return run;
}

bool LoopTakeover::end_run(std::uint64_t run) {
  std::uint64_t expected = pack({LoopOwner::task_running_here, run});
  return state_.compare_exchange_strong(expected, pack({LoopOwner::loop_thread, run}));
}

bool LoopTakeover::look() {
  std::uint64_t now = state_.load();
  const Ownership o = unpack(now);
  if (o.owner == LoopOwner::task_running_here && now == seen_ &&
      state_.compare_exchange_strong(now, pack({LoopOwner::standby, o.run}))) {
    return true;
  }
  seen_ = now;
  return false;
}

void LoopTakeover::start_standby(const std::function<int()>& run_loop) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, run_loop] { standby_main(run_loop); });
}

void LoopTakeover::standby_main(const std::function<int()>& run_loop) {
  std::unique_lock lock(mutex_);
  while (!cv_.wait_for(lock, kTakeoverPeriod, [&] { return stop_; })) {
    if (!look()) continue;
    lock.unlock();
    if (log_) {
      log_->warn("a task that is usually quick ran on the event loop for over {} ms; the loop goes on on another thread",
                 kTakeoverPeriod.count());
    }
    int code = 1;
    try {
      code = run_loop();
    } catch (const std::exception& e) {  // as run() would have let it out: end the worker
      if (log_) log_->error("the worker's event loop failed: {}", e.what());
    }
    lock.lock();
    result_ = code;
    cv_.notify_all();
    return;
  }
}

std::optional<int> LoopTakeover::finish(bool loop_moved) {
  std::optional<int> code;
  {
    std::unique_lock lock(mutex_);
    if (loop_moved) {
      cv_.wait(lock, [&] { return result_.has_value(); });
      code = result_;
    }
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return code;
}

std::optional<Completion> ExecutorOnLoop::run_here(Job job) {
  takeover_.start_standby(run_loop_);
  const std::uint64_t run = takeover_.begin_run();
  Completion c = exec_.run_here(std::move(job));
  if (!takeover_.end_run(run)) {
    exec_.complete_elsewhere(std::move(c));
    return std::nullopt;
  }
  return c;
}

}  // namespace dtask::worker

// Fast path "early start": remembering early results, starting a StartTask, adopting (see early_start.hpp).
#include "worker/early_start.hpp"

#include <algorithm>

#include "worker/worker_state.hpp"

namespace dtask::worker {

using namespace protocol;

EarlyStarts::Early& EarlyStarts::remember(std::uint64_t nonce) {
  auto [it, fresh] = early_.try_emplace(nonce);
  if (fresh) {
    order_.push_back(nonce);
    if (order_.size() > kEarlyRemembered) {
      early_.erase(order_.front());
      order_.pop_front();
    }
  }
  return early_.at(nonce);
}

std::optional<EarlyStarts::Early> EarlyStarts::adopt(std::uint64_t nonce, const std::string& key) {
  auto it = early_.find(nonce);
  if (it == early_.end() || !it->second.result || it->second.key != key) {
    remember(nonce);  // a StartTask arriving later is ignored
    return std::nullopt;
  }
  Early e = std::move(it->second);
  early_.erase(it);  // its order_ entry is skipped when it comes up
  return e;
}

EarlyStarts::Early& EarlyStarts::ran(std::uint64_t nonce, std::string key, std::shared_ptr<const Payload> result,
                                     std::string pushed_to) {
  Early& e = remember(nonce);
  e.key = std::move(key);
  e.result = std::move(result);
  e.pushed_to = std::move(pushed_to);
  return e;
}

void EarlyStarts::push_refused(std::uint64_t nonce) {
  if (auto it = early_.find(nonce); it != early_.end()) it->second.pushed_to.clear();
}

// Runs a StartTask now if this worker has nothing else to do and the function has always been
// quick; anything else is left to the scheduler's ComputeTask (NotStarted tells the client).
bool WorkerState::start_early(StartTask& m, const std::string& from, WorkerOutbox& out) {
  if (early_.known(m.nonce)) return true;  // the ComputeTask was first, or a repeat
  const dtask_task_v1* entry = config_.find_task ? config_.find_task(m.func) : nullptr;
  const bool here_and_now = entry && quick_.may_run_here(entry) && welcomed_ && pending_.empty() &&
                            ready_jobs_.empty() && out.to_executor.empty() && exec_.can_run_here() && exec_.idle();
  if (!here_and_now) {
    // The client then tells the scheduler at once; its ComputeTask reports an unknown name.
    out.reply(from, NotStarted{m.key});
    return true;
  }
  Job job;
  // No task's id (slot kNoSlot does not exist): should the run outlast the loop's takeover, its
  // completion finds no pending task to land on.
  // The executor does not record it (kNoTask): its run is recorded when a ComputeTask adopts it.
  job.id = kNoTask;
  job.entry = entry;
  job.args.resize(m.args.size());
  for (std::size_t i = 0; i < m.args.size(); ++i) {
    auto held = std::make_shared<const Payload>(std::move(m.args[i]));
    job.args[i].value = held.get();
    job.keep.push_back(std::move(held));
  }
  auto c = run_on_loop(std::move(job));
  if (!c) return false;
  quick_.note_run(c->entry, c->run_ns);
  // A failure is left to the ComputeTask, which runs it again and reports it; a big result is
  // not kept (it would not be pushed, and unused ones would pile up here until forgotten).
  if (!c->ok || c->result.nbytes() > kInlineResultBytes) {
    out.reply(from, NotStarted{m.key});
    return true;
  }
  out.reply(from, ResultPushed{TaskId{}, m.key, c->result, me_, true}, PushRef{PushRef::Kind::early, m.nonce});
  // Pushed to its client unless the socket refuses it (push_refused clears that).
  auto& e = early_.ran(m.nonce, std::move(m.key), std::make_shared<const Payload>(std::move(c->result)),
                       std::move(m.reply_to));
  e.start_us = c->start_us;
  e.run_us = c->run_ns / 1000;
  e.thread = c->thread;
  return true;
}

// The scheduler placed here a task its client asked us to start early: done if that run happened
// (its result is used, not computed again); otherwise it runs now as usual.
bool WorkerState::adopt_early(ComputeTask& m, WorkerOutbox& out) {
  if (!early_.enabled()) return false;
  auto e = early_.adopt(m.early_nonce, m.key);
  if (!e) return false;
  // Early results are small (start_early keeps no other), so the data rides along.
  TaskDone done{m.task, e->result->nbytes(), true, *e->result};
  // This task's run (an early start whose result is not adopted is not recorded: the task runs
  // again, and that run is).
  if (config_.telemetry) config_.telemetry->record_run(m.task, m.func, e->start_us, e->start_us + e->run_us, e->thread, false);
  // The client that started it has the result; its receipt usually reaches the scheduler first,
  // as for any pushed result.
  const bool pushed =
      !e->pushed_to.empty() && std::find(m.push_to.begin(), m.push_to.end(), e->pushed_to) != m.push_to.end();
  store_result(std::move(done), std::move(e->result), pushed ? 1 : 0, m.dependents_waiting, out);
  return true;
}

}  // namespace dtask::worker

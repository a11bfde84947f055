// Fast path, scheduler side: results pushed by the worker straight to the waiting client, and its receipts.
//
// Purpose: a client waiting on a small submit learns the result one hop sooner (worker -> client
//   instead of worker -> scheduler -> client), and the scheduler may learn of the completion from
//   the client's receipt before the worker's (possibly held back) TaskDone arrives.
// Inputs: TaskSpec::push_result (the client is about to wait for a wanted task), the clients'
//   data identities (RegisterClient::data_identity), ResultsReceived receipts from clients.
// Action: at submission, marks the task (Task::push_result) when SchedulerConfig::fast_paths
//   .push_results is on; its ComputeTask then names the wanting clients' data identities
//   (push_to) and whether other tasks wait for the result (dependents_waiting: the worker must not
//   hold its TaskDone back then). A receipt for such a task, from a client that wants it, naming
//   the worker the task is processing on, completes the task exactly as that worker's TaskDone
//   would (finish event with reported_by: that client gets no KeyDone, it has the value).
// Caveats: a receipt is believed only for what this scheduler would have heard from that worker
//   (anything else, e.g. stolen or released meanwhile, is counted stale and the worker's TaskDone
//   decides). The worker's later TaskDone is then stale and harmless: it keeps its copy as the
//   holder. Other wanting clients still get KeyDone, and so does the pushed-to client when the
//   TaskDone comes first, since a pushed copy can be lost with a broken connection. With the
//   switch off no task is marked, so every receipt is ignored (counted stale) and nothing changes.
#include "scheduler/scheduler_state.hpp"

namespace dtask::scheduler {

using namespace protocol;

bool SchedulerState::push_result_wanted(const TaskSpec& spec) const {
  return config_.fast_paths.push_results && spec.push_result && spec.wanted;
}

void SchedulerState::add_push_targets(const Task& t, ComputeTask& m) const {
  for (ClientId c : t.wanted_by) {
    const auto& rec = clients_[c.value];
    if (rec.alive && !rec.data_identity.empty()) m.push_to.push_back(rec.data_identity);
  }
  m.dependents_waiting = t.unfinished_dependents > 0;
}

// Purpose: a client reports results a worker pushed to it (one receipt per result).
// Input: receipts naming the task by id, or by key for an early start's result (the worker knew
//   no task id then), the worker that pushed it, and its size.
// Action: each believable receipt completes its task on that worker (finish event, reported_by
//   this client); then what follows completions (after_finished) runs once for the batch.
// Caveats: see the file header for which receipts are believed.
void SchedulerState::on_results_received(ClientId c, const ResultsReceived& m, Outbox& out) {
  std::vector<WorkerId> finished_on;
  for (const auto& r : m.receipts) {
    Task* t = nullptr;
    if (r.key.empty()) {
      t = tasks_.lookup(r.task);
    } else if (std::uint32_t slot = tasks_.slot_of_key(r.key); slot != kNoSlot) {
      t = &tasks_[slot];  // an early start's result: the worker knew no task id
    }
    if (!t || t->state != TaskState::processing || t->processing_on != r.worker || !t->push_result ||
        !t->wanted_by.contains(c)) {
      ++stale_messages_;
      continue;
    }
    transition(slot_of(t->id), TaskEvent::finish(r.worker, r.nbytes, nullptr, c), out);
    ++receipts_accepted_;
    finished_on.push_back(r.worker);
  }
  if (!finished_on.empty()) after_finished(finished_on, out);
}

}  // namespace dtask::scheduler

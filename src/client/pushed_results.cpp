// Fast path "pushed results", client side: a small result straight from the worker, and its receipt.
//
// Purpose  submit(f).result() hears its result one hop sooner: from the worker that ran it, not
//          from the scheduler's KeyDone afterwards.
// Inputs   TaskSpec::push_result, set by ClientCore::submit on the wanted tasks of a small
//          submit (<= kDirectSendTasks tasks); ResultPushed from a worker, on a data connection
//          (I/O thread) or on early_sock_ (take_early_replies: the I/O thread or a spinning
//          waiter).
// Action   on_pushed makes the future finished with its data and queues a receipt
//          (ResultsReceived) for the scheduler: a plain one rides with this client's next
//          message (OutgoingQueue::receipt); an early start's goes held, right after that
//          task's SubmitTasks (OutgoingQueue::hold). It also adds the worker to the early
//          starts' targets (EarlyTargets, early_start.cpp). KeyDone connects the client to the worker that
//          ran a pushed task (on(KeyDone)), so the next results from there can be pushed.
// Caveats  A result that comes after KeyDone, after a cancel or for a released key is dropped.
//          The scheduler learns of a pushed result from the receipt or, from a client that
//          goes quiet, from the worker's held-back TaskDone, whichever comes first. Big
//          submissions are not pushed (they would double the messages the client takes in).
//          Off with FastPaths::push_results: no task asks to be pushed, so no receipts and no
//          early starts either.
#include "client/connection.hpp"

namespace dtask::detail {

using namespace protocol;

void ClientCore::on_pushed(ResultPushed& m, const std::string& from) {
  std::lock_guard lock(mutex_);
  early_targets_.learn(m.worker, from);  // early_start.cpp
  auto it = states_.find(m.key);
  if (it == states_.end()) return;  // released meanwhile
  auto& s = *it->second;
  if (s.status != FutureStatus::pending || s.data) return;  // KeyDone was first, or cancelled
  s.status = FutureStatus::finished;
  if (m.early) {
    // An early start's: no task id yet (KeyDone tells it), so its key names it in the receipt,
    // which goes right after the held SubmitTasks (or on its own, soon, if that went already).
    outgoing_.hold(ResultsReceived{{PushReceipt{m.task, m.worker, m.data.nbytes(), m.key}}}, transport::now_ms());
  } else {
    s.task = m.task;
    outgoing_.receipt(PushReceipt{m.task, m.worker, m.data.nbytes(), {}});
  }
  s.data = std::move(m.data);
  ++results_pushed_;
}

}  // namespace dtask::detail

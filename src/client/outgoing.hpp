// What the client owes the scheduler and when each part is due: a pure queue, no sockets, no clock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace dtask::detail {

// Three kinds of message wait here (ClientCore::outgoing_, guarded by its mutex_; the caller
// passes the time, so every rule below is unit-tested: tests/unit/test_client_rules.cpp).
//
//   urgent   submissions, cancels, info requests, shutdown, goodbye: due at once, and they take
//            everything held along.
//   held     the SubmitTasks of an early-started task, each followed by its early result's
//            receipt (early_start.cpp, pushed_results.cpp), and releases of keys: not urgent.
//            They ride with the next urgent message or leave on their own kEarlyHoldMs after
//            the first of them was held. The worker answers a StartTask first; the scheduler
//            hears of the task a little later, in one batch, and must place it before it hears
//            it done (hence: held submits first, in order, then receipts, then the rest).
//   receipts of pushed results (pushed_results.cpp): never travel alone (a quiet client is
//            covered by the workers' held-back TaskDones), and go before everything but the
//            held submits: the scheduler must see a task done before this client releases it.
class OutgoingQueue {
 public:
  // Due at once.
  void push(protocol::ClientToScheduler m);
  // Not urgent. Releases of many futures dropped together travel as one message.
  void release(std::string key, std::uint64_t now_ms);
  // An early start's SubmitTasks, or an early result's receipt: first in line when they go.
  void hold(protocol::ClientToScheduler m, std::uint64_t now_ms);
  // A pushed result's receipt: rides with the next message that goes.
  void receipt(protocol::PushReceipt r);
  // The StartTask for `key` could not be sent: its held SubmitTasks must not tell the scheduler
  // to prefer that worker.
  void unmark_early(const std::string& key);
  // What is due at `now_ms`, in sending order, taken out of the queue; everything but lone
  // receipts if `force` (a NotStarted, a StartTask that could not go, closing).
  std::vector<protocol::ClientToScheduler> take_due(std::uint64_t now_ms, bool force);
  // When what is held falls due (0: nothing held): the I/O thread sleeps no longer than that.
  std::uint64_t due_ms() const { return held_since_ms_ == 0 ? 0 : held_since_ms_ + protocol::kEarlyHoldMs; }

 private:
  void start_hold(std::uint64_t now_ms) {
    if (held_since_ms_ == 0) held_since_ms_ = now_ms;
  }

  std::vector<protocol::ClientToScheduler> held_;   // early submits and their receipts, in order
  std::vector<protocol::ClientToScheduler> queue_;  // everything else, in order (releases too)
  std::vector<protocol::PushReceipt> receipts_;
  std::uint64_t held_since_ms_ = 0;  // when the oldest held message or release came; 0: none
};

}  // namespace dtask::detail

// The client's outgoing queue: which messages to the scheduler are due, in which order.
#include "client/outgoing.hpp"

#include <algorithm>

namespace dtask::detail {

using namespace protocol;

void OutgoingQueue::push(ClientToScheduler m) { queue_.push_back(std::move(m)); }

void OutgoingQueue::release(std::string key, std::uint64_t now_ms) {
  if (!queue_.empty()) {
    if (auto* r = std::get_if<ReleaseKeys>(&queue_.back())) {
      r->keys.push_back(std::move(key));
      return;
    }
  }
  start_hold(now_ms);
  queue_.push_back(ReleaseKeys{{std::move(key)}});
}

void OutgoingQueue::hold(ClientToScheduler m, std::uint64_t now_ms) {
  start_hold(now_ms);
  held_.push_back(std::move(m));
}

void OutgoingQueue::receipt(PushReceipt r) { receipts_.push_back(std::move(r)); }

void OutgoingQueue::unmark_early(const std::string& key) {
  for (auto& m : held_) {
    auto* sub = std::get_if<SubmitTasks>(&m);
    if (!sub) continue;
    for (auto& t : sub->tasks) {
      if (t.key != key) continue;
      t.early_nonce = 0;
      t.early_on = {};
    }
  }
}

std::vector<ClientToScheduler> OutgoingQueue::take_due(std::uint64_t now_ms, bool force) {
  const bool urgent = force || std::any_of(queue_.begin(), queue_.end(), [](const ClientToScheduler& m) {
                        return !std::holds_alternative<ReleaseKeys>(m);
                      });
  const bool held = !held_.empty() || !queue_.empty();  // only releases in queue_ unless urgent
  if (!urgent && !(held && held_since_ms_ != 0 && now_ms >= held_since_ms_ + kEarlyHoldMs)) return {};
  std::vector<ClientToScheduler> out;
  out.reserve(held_.size() + queue_.size() + 1);
  for (auto& m : held_) out.push_back(std::move(m));
  held_.clear();
  held_since_ms_ = 0;
  if (!receipts_.empty() && (!out.empty() || !queue_.empty())) {
    out.push_back(ResultsReceived{std::move(receipts_)});
    receipts_.clear();
  }
  for (auto& m : queue_) out.push_back(std::move(m));
  queue_.clear();
  return out;
}

}  // namespace dtask::detail

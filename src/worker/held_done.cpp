// Fast path "held TaskDone": holding, cancelling and releasing (see held_done.hpp).
#include "worker/held_done.hpp"

#include <algorithm>

namespace dtask::worker {

void HeldDone::hold(protocol::TaskDone done, std::uint32_t pushes) {
  held_.push_back(Held{std::move(done), pushes});
}

std::optional<protocol::TaskDone> HeldDone::refused(protocol::TaskId task) {
  auto it = std::find_if(held_.begin(), held_.end(), [&](const Held& h) { return h.done.task == task; });
  if (it == held_.end() || --it->pushes > 0) return std::nullopt;
  protocol::TaskDone done = std::move(it->done);
  held_.erase(it);
  if (held_.empty()) since_.reset();
  return done;
}

void HeldDone::release(std::span<const protocol::TaskId> tasks) {
  if (held_.empty()) return;
  std::erase_if(held_, [&](const Held& h) { return std::find(tasks.begin(), tasks.end(), h.done.task) != tasks.end(); });
  if (held_.empty()) since_.reset();
}

std::vector<protocol::TaskDone> HeldDone::take_due(std::uint64_t now, bool others_leaving) {
  if (held_.empty()) return {};
  if (!since_) since_ = now;
  if (!others_leaving && now < *since_ + protocol::kPushedDoneDelayMs) return {};
  return take_all();
}

std::vector<protocol::TaskDone> HeldDone::take_all() {
  std::vector<protocol::TaskDone> out;
  out.reserve(held_.size());
  for (auto& h : held_) out.push_back(std::move(h.done));
  held_.clear();
  since_.reset();
  return out;
}

}  // namespace dtask::worker

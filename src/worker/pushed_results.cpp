// Fast path "pushed results": the worker's side of a push (see pushed_results.hpp).
#include "worker/pushed_results.hpp"

namespace dtask::worker {

std::uint32_t PushedResults::push(protocol::TaskId task, const std::string& key, const Payload& result,
                                  const std::vector<std::string>& push_to, protocol::WorkerId me,
                                  WorkerOutbox& out) const {
  if (!enabled_ || result.nbytes() > kInlineResultBytes) return 0;
  std::uint32_t pushes = 0;
  for (const auto& client : push_to) {
    out.reply(client, protocol::ResultPushed{task, key, result, me, false}, PushRef{PushRef::Kind::task, task.value});
    ++pushes;
  }
  return pushes;
}

}  // namespace dtask::worker

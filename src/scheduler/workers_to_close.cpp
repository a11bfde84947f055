// Which workers (or groups of workers) to retire first: idle, then fewest bytes held (workers_to_close.hpp).
#include "scheduler/workers_to_close.hpp"

#include <algorithm>
#include <map>
#include <tuple>

namespace dtask::scheduler {

namespace {
struct Candidate {
  std::string name;
  std::size_t processing = 0;
  std::uint64_t nbytes = 0;
  std::vector<std::string> members;
};
// Idle first, then fewest bytes, then fewest tasks, then by name: a total order, so ties are stable.
bool better(const Candidate& a, const Candidate& b) {
  return std::make_tuple(a.processing != 0, a.nbytes, a.processing, a.name) <
         std::make_tuple(b.processing != 0, b.nbytes, b.processing, b.name);
}
}  // namespace

std::vector<GroupToClose> groups_to_close(std::span<const WorkerLoad> workers, std::size_t n) {
  std::map<std::string, Candidate> groups;
  for (const auto& w : workers) {
    const std::string& g = w.group.empty() ? w.name : w.group;
    auto& c = groups[g];
    c.name = g;
    if (w.leaving) continue;
    c.processing += w.processing;
    c.nbytes += w.nbytes;
    c.members.push_back(w.name);
  }
  std::vector<Candidate> order;
  for (auto& [g, c] : groups) {
    if (!c.members.empty()) order.push_back(std::move(c));  // a group all leaving is gone already
  }
  std::sort(order.begin(), order.end(), better);
  std::vector<GroupToClose> out;
  for (std::size_t i = 0; i < order.size() && i < n; ++i) {
    std::sort(order[i].members.begin(), order[i].members.end());
    out.push_back({order[i].name, std::move(order[i].members)});
  }
  return out;
}

std::vector<std::string> workers_to_close(std::span<const WorkerLoad> workers, std::size_t n) {
  std::vector<Candidate> order;
  for (const auto& w : workers) {
    if (!w.leaving) order.push_back({w.name, w.processing, w.nbytes, {}});
  }
  std::sort(order.begin(), order.end(), better);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < order.size() && i < n; ++i) out.push_back(order[i].name);
  return out;
}

}  // namespace dtask::scheduler

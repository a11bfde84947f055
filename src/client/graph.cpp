// Graph submission: from the user's Delayed nodes to the TaskSpecs of one submit, in order.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <unordered_set>

#include "client/connection.hpp"

namespace dtask::detail {

using namespace protocol;

std::string fresh_key(const std::string& func) {
  static const std::uint32_t prefix = [] {
    std::random_device rd;
    return static_cast<std::uint32_t>(rd());
  }();
  static std::atomic<std::uint64_t> counter{0};
  char buf[48];
  std::snprintf(buf, sizeof buf, "-%08x-%llx", prefix, static_cast<unsigned long long>(counter++));
  return func + buf;
}

std::string name_of_task(const void* fn) {
  const char* name = task_name_of(fn);
  if (!name) {
    throw std::invalid_argument(
        "dtask: this function is not a registered task (declare it with DTASK_TASKS in a plugin that this "
        "program links or has loaded)");
  }
  return name;
}

std::vector<FutureRefPtr> submit_graph(ClientCore& core, const std::vector<DelayedNodePtr>& outputs) {
  // Post-order walk without recursion: dependencies are emitted before their dependents. Nodes
  // are told apart by address (hashing 100k pointers, not 100k key strings), and a node without
  // node arguments (every task of a map) is emitted at once, without a walk frame.
  std::vector<TaskSpec> specs;
  specs.reserve(outputs.size());
  std::unordered_set<const DelayedNode*> seen;
  seen.reserve(outputs.size());
  std::unordered_set<const DelayedNode*> wanted;
  wanted.reserve(outputs.size());
  for (const auto& o : outputs) wanted.insert(o.get());
  struct Frame {
    const DelayedNode* node;
    std::size_t next_child = 0;
    std::vector<const DelayedNode*> children;
  };
  auto children_of = [](const DelayedNode* n) {
    std::vector<const DelayedNode*> c;
    for (const auto& a : n->args) {
      if (a.kind == NodeArg::Kind::node) c.push_back(a.node.get());
      if (a.kind == NodeArg::Kind::node_list) {
        for (const auto& x : a.nodes) c.push_back(x.get());
      }
    }
    return c;
  };
  auto emit = [&](const DelayedNode* n) {
    TaskSpec& s = specs.emplace_back();
    s.key = n->key;
    s.func = n->func;
    s.priority = n->options.priority;
    s.retries = static_cast<std::uint32_t>(std::max(0, n->options.retries));
    s.workers = n->options.workers;
    s.allow_other_workers = n->options.allow_other_workers;
    for (const auto& [k, v] : n->options.resources) s.resources.emplace_back(k, v);
    s.wanted = wanted.count(n) > 0;
    s.args.reserve(n->args.size());
    for (const auto& a : n->args) {
      ClientArg& ca = s.args.emplace_back();
      switch (a.kind) {
        case NodeArg::Kind::value:
          ca.kind = ClientArg::value;
          ca.data = a.value;
          break;
        case NodeArg::Kind::node:
          ca.kind = ClientArg::dep;
          ca.refs.push_back(a.node->key);
          break;
        case NodeArg::Kind::future:
          ca.kind = ClientArg::dep;
          ca.refs.push_back(key_of(*a.future));
          break;
        case NodeArg::Kind::node_list:
          ca.kind = ClientArg::dep_list;
          for (const auto& x : a.nodes) ca.refs.push_back(x->key);
          break;
        case NodeArg::Kind::future_list:
          ca.kind = ClientArg::dep_list;
          for (const auto& x : a.futures) ca.refs.push_back(key_of(*x));
          break;
      }
    }
  };
  std::vector<Frame> stack;
  for (const auto& out : outputs) {
    if (!seen.insert(out.get()).second) continue;
    auto children = children_of(out.get());  // an empty vector allocates nothing
    if (children.empty()) {
      emit(out.get());
      continue;
    }
    stack.push_back({out.get(), 0, std::move(children)});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next_child < f.children.size()) {
        const DelayedNode* c = f.children[f.next_child++];
        if (seen.insert(c).second) stack.push_back({c, 0, children_of(c)});
        continue;
      }
      emit(f.node);
      stack.pop_back();
    }
  }
  std::vector<std::string> keys;
  keys.reserve(outputs.size());
  for (const auto& o : outputs) keys.push_back(o->key);
  return core.submit(std::move(specs), keys);
}

}  // namespace dtask::detail

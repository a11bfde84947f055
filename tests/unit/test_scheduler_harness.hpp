// The scheduler tests' one helper: a SchedulerState driven without sockets, and readers of its outbox.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "scheduler/scheduler_state.hpp"

namespace dtask::test {

using namespace dtask::protocol;
using namespace dtask::scheduler;

// One helper drives every scenario: peers, submissions, worker replies, and reading the outbox.
struct Harness {
  SchedulerState s;
  Outbox out;
  std::uint64_t now = 1000;
  ClientId client{};

  // Every fast path on unless a test says otherwise: these tests are about the scheduler's rules,
  // not about the environment they run in (DTASK_FAST_PATHS=none must not change them).
  static SchedulerConfig config(FastPaths paths = FastPaths::all()) {
    SchedulerConfig cfg;
    cfg.fast_paths = paths;
    return cfg;
  }
  explicit Harness(SchedulerConfig cfg = config()) : s(cfg) {
    client = *s.add_client(RegisterClient{kProtocolVersion, "c", "client-data-id"}, "client-id", now, out);
  }
  WorkerId worker(const std::string& name, std::uint32_t nthreads = 1, Resources res = {}) {
    RegisterWorker r;
    r.name = name;
    r.host = "host-" + name;
    r.address = "tcp://127.0.0.1:" + std::to_string(5000 + name.size() * 7 + name[0]);
    r.nthreads = nthreads;
    r.resources = std::move(res);
    std::string why;
    auto id = s.add_worker(r, "wid-" + name, now, out, &why);
    REQUIRE_MESSAGE(id.has_value(), why);
    return *id;
  }
  static TaskSpec spec(const std::string& key, const std::string& func, std::vector<std::string> deps = {},
                       bool wanted = true) {
    TaskSpec t;
    t.key = key;
    t.func = func;
    t.wanted = wanted;
    if (deps.empty()) {
      ClientArg a;
      a.kind = ClientArg::value;
      a.data = Codec<int>::encode(1);
      t.args.push_back(a);
    }
    for (auto& d : deps) {
      ClientArg a;
      a.kind = ClientArg::dep;
      a.refs = {d};
      t.args.push_back(a);
    }
    return t;
  }
  // A task the client started early on worker `on` (StartTask with `nonce`), pushed to it.
  static TaskSpec early_spec(const std::string& key, std::uint64_t nonce, WorkerId on) {
    auto t = spec(key, "inc");
    t.push_result = true;
    t.early_nonce = nonce;
    t.early_on = on;
    return t;
  }
  // n independent root tasks: prefix0, prefix1, ...
  static std::vector<TaskSpec> roots(const std::string& prefix, int n, const std::string& func) {
    std::vector<TaskSpec> r;
    for (int i = 0; i < n; ++i) r.push_back(spec(prefix + std::to_string(i), func));
    return r;
  }
  void submit(std::vector<TaskSpec> specs) { s.handle(client, SubmitTasks{std::move(specs)}, now, out); }

  // Takes every ComputeTask sent so far, by worker.
  std::vector<std::pair<WorkerId, ComputeTask>> computes() {
    std::vector<std::pair<WorkerId, ComputeTask>> r;
    std::vector<std::pair<WorkerId, SchedulerToWorker>> rest;
    for (auto& [w, m] : out.to_workers) {
      if (auto* c = std::get_if<ComputeTask>(&m)) r.emplace_back(w, *c);
      else rest.emplace_back(w, std::move(m));
    }
    out.to_workers = std::move(rest);
    return r;
  }
  std::pair<WorkerId, ComputeTask> compute_of(const std::string& key) {
    auto cs = computes();
    for (auto& c : cs) {
      if (c.second.key == key) return c;
    }
    FAIL("no ComputeTask for " << key);
    return {};
  }
  template <class M>
  std::vector<M> to_client() {
    std::vector<M> r;
    for (auto& [c, m] : out.to_clients) {
      if (auto* x = std::get_if<M>(&m)) r.push_back(*x);
    }
    return r;
  }
  std::vector<TaskId> released_on(WorkerId w) {
    std::vector<TaskId> r;
    for (auto& [to, m] : out.to_workers) {
      if (to != w) continue;
      if (auto* x = std::get_if<ReleaseTasks>(&m)) r.insert(r.end(), x->tasks.begin(), x->tasks.end());
    }
    return r;
  }
  void done(WorkerId w, const ComputeTask& c, std::uint64_t nbytes = 8) {
    s.handle(w, TaskDone{c.task, nbytes, false, {}}, now, out);
  }
  TaskState state_of(const std::string& key) {
    const Task* t = s.find(key);
    return t ? t->state : TaskState::forgotten;
  }
};

}  // namespace dtask::test

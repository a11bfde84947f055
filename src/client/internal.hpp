// What bootstrap, the tests and the benchmark may see of a Client beyond the public API.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include <dtask/client.hpp>

namespace dtask::detail {

// How often this client took its own fast paths (docs/architecture.md, "Fast paths"). Timing
// decides that, so tests must not assert on them; the benchmark reports them.
struct ClientCounters {
  std::uint64_t results_pushed = 0;     // results that came straight from a worker before KeyDone
  std::uint64_t early_starts = 0;       // StartTasks sent (early_start.cpp)
  std::uint64_t early_not_started = 0;  // ...of which the worker declined (NotStarted)
};

// Client befriends this; nothing under include/ declares more than its name.
struct ClientInternals {
  static ClientCore& core(Client& c);
  static ClientCounters counters(Client& c);
  // Called on the client's I/O thread when the cluster ends: it announced shutdown, or the
  // scheduler was lost (code 1). The MPI runner ends a client whose user code is still busy.
  static void set_end_handler(Client& c, std::function<void(int code, const std::string& reason)> handler);
  // The scheduler's info as it sent it (SchedulerState::info()); throws TimeoutError.
  static nlohmann::json info_json(Client& c, std::chrono::milliseconds timeout);
};

}  // namespace dtask::detail

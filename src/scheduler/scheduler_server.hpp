// The scheduler's event loop: one ROUTER socket, SchedulerState decisions, batched replies; it
// also publishes the dashboard's snapshots and writes the job report (docs/dashboard.md).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <dtask/types.hpp>

#include "scheduler/scheduler_state.hpp"

namespace dtask::scheduler {

struct SchedulerOptions {
  std::string host = "127.0.0.1";
  std::string interface;  // wins over host when set
  int port = 0;           // 0: ephemeral
  Security security;
  SchedulerConfig config;
  std::string where;      // log prefix, e.g. "rank0@node1"
  // MPI runner: the job ends (non-zero) when its client goes away without saying goodbye.
  bool exit_when_client_lost = false;
  std::string scheduler_file;  // written atomically once bound, removed when the loop ends
  std::string job_id;
  std::uint64_t shutdown_grace_ms = 5000;  // how long to wait for workers to say goodbye
  // The dashboard (docs/dashboard.md): "" or ":8787" (8787, else the next free port), ":0",
  // "HOST:PORT", or "none". Its host defaults to the address the scheduler binds.
  std::string dashboard_address;
  // Written when the loop ends: the job's report as one HTML page (empty: none).
  std::string report_path;
};

class SchedulerServer {
 public:
  // Binds at once, so address() is known before run(); throws std::runtime_error with the reason.
  explicit SchedulerServer(SchedulerOptions options);
  ~SchedulerServer();
  SchedulerServer(const SchedulerServer&) = delete;
  SchedulerServer& operator=(const SchedulerServer&) = delete;

  const std::string& address() const;
  // The dashboard's URL with its token; empty when none is served.
  const std::string& dashboard_link() const;
  // Serves until shutdown; returns the exit code the shutdown carried.
  int run();
  // Thread- and signal-safe: begin an orderly shutdown with this exit code.
  void stop(int code);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtask::scheduler

// The dashboard's HTTP server: one thread (cpp-httplib) serving the scheduler's last publication.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

namespace dtask::dashboard {

// What the scheduler's loop hands over every publication (docs/dashboard.md, "Snapshot JSON").
// Immutable once published: the HTTP thread reads it without touching scheduler state.
struct Publication {
  nlohmann::json snapshot;    // for /metrics
  std::string snapshot_text;  // snapshot.dump(), for /api/snapshot
};

struct ServerOptions {
  // "" or ":8787": 8787, else the next free port (one warning); ":0": random; "HOST:PORT" or
  // "PORT": exactly that (taken: error); "none"/"false"/"off": no server (start() returns null).
  std::string address;
  std::string default_host = "127.0.0.1";  // the scheduler's bind address, when address has no host
  std::string token;                       // required on every route (make_token())
  std::shared_ptr<spdlog::logger> log;
  // Asks the publisher for a fresh publication (the scheduler wakes its loop). A read that finds
  // the last one older than kFreshMs calls it and waits (at most kFreshWaitMs) for the next, so
  // the first read after a quiet spell (a Prometheus scrape) is not stale. Called on an HTTP
  // thread: it must be thread-safe. Empty: reads serve what there is.
  std::function<void()> want_fresh;
};
inline constexpr std::uint64_t kFreshMs = 250;  // the scheduler's cadence while read (kPublishMs)
inline constexpr std::uint64_t kFreshWaitMs = 1000;

class Server {
 public:
  // Binds and starts serving at once; nullptr for "none". Throws std::runtime_error naming the
  // address and the reason when it cannot (bad syntax, explicit port taken, no such host).
  static std::unique_ptr<Server> start(const ServerOptions& options);
  ~Server();  // stops the thread and closes the port
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // http://HOST:PORT/status?token=TOKEN (HOST: the bound address; 0.0.0.0 is replaced by this
  // host's name).
  const std::string& link() const;
  int port() const;
  // When /api/snapshot or /metrics was last read: steady clock (transport::now_ms()), 0 never.
  std::uint64_t last_read_ms() const;
  // Thread-safe (the scheduler's loop calls it, the HTTP thread reads): the next requests see `p`.
  void publish(std::shared_ptr<const Publication> p);

 private:
  Server() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// 32 random hex characters (from /dev/urandom).
std::string make_token();

}  // namespace dtask::dashboard

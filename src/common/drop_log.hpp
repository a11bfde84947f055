// Rate-limited warnings about bad input, per peer: the first is logged, then one line per interval with a count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

namespace dtask::log {

// A peer that sends garbage (a fuzzer, a stray client, a hostile one) must not flood the log:
// its first bad message is logged, later ones at most once per `interval_ms`, each such line
// saying how many were dropped unlogged since the previous one. Pure (the caller passes the
// time), owned by one event loop thread; not thread-safe. The peer table is bounded: beyond
// `max_peers` distinct peers, the rest share one entry.
class DropLimiter {
 public:
  explicit DropLimiter(std::uint64_t interval_ms = 10000, std::size_t max_peers = 1024)
      : interval_ms_(interval_ms), max_peers_(max_peers) {}

  // One more bad message from `peer` at `now_ms`: true if it should be logged now, with
  // `unlogged` set to how many from this peer were dropped without a line since the last one.
  bool admit(std::string_view peer, std::uint64_t now_ms, std::uint64_t& unlogged) {
    auto it = peers_.find(std::string(peer));
    if (it == peers_.end()) {
      // One entry is kept for the overflow: the table never holds more than max_peers entries.
      if (peers_.size() + 1 >= max_peers_) it = peers_.try_emplace(std::string(kOthers)).first;
      else it = peers_.try_emplace(std::string(peer)).first;
    }
    Entry& e = it->second;
    if (e.logged_once && now_ms < e.last_ms + interval_ms_) {
      ++e.unlogged;
      return false;
    }
    unlogged = e.unlogged;
    e.unlogged = 0;
    e.logged_once = true;
    e.last_ms = now_ms;
    return true;
  }
  // Forgets a peer (it left), so a bounded table does not fill with the departed.
  void forget(std::string_view peer) { peers_.erase(std::string(peer)); }
  std::size_t peers() const { return peers_.size(); }

  static constexpr std::string_view kOthers = "\x01others";

 private:
  struct Entry {
    bool logged_once = false;
    std::uint64_t last_ms = 0;
    std::uint64_t unlogged = 0;
  };
  std::uint64_t interval_ms_;
  std::size_t max_peers_;
  std::unordered_map<std::string, Entry> peers_;
};

// Logs `what` about `peer` (a warning) if the limiter admits it, with the count dropped unlogged.
inline void warn_limited(spdlog::logger& log, DropLimiter& limiter, std::string_view peer, std::uint64_t now_ms,
                         std::string_view what) {
  std::uint64_t unlogged = 0;
  if (!limiter.admit(peer, now_ms, unlogged)) return;
  if (unlogged == 0) log.warn("{}", what);
  else log.warn("{} ({} more like it dropped without a line since the last)", what, unlogged);
}

}  // namespace dtask::log

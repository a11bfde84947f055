// Everything the worker's core wants done, collected while a pass is handled; the loop sends it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "protocol/messages.hpp"
#include "worker/executor.hpp"

namespace dtask::worker {

// Results up to this size ride inside TaskDone and may be pushed (see protocol::TaskDone).
inline constexpr std::uint64_t kInlineResultBytes = 1024;

// What a reply on the data socket was, so that a refused push can be reported back to the core
// (WorkerState::push_refused): the data socket refuses a send to a client not connected to it.
struct PushRef {
  enum class Kind : std::uint8_t { none, task, early };
  Kind kind = Kind::none;
  std::uint64_t id = 0;  // kind task: the task id; kind early: the StartTask's nonce
};

struct WorkerOutbox {
  // To the scheduler, one batch per pass.
  std::vector<protocol::WorkerToScheduler> to_scheduler;
  // On the data socket, to a client or a peer by its routing identity: data replies, pushed
  // results, NotStarted. One send each, in order.
  struct Reply {
    std::string to;
    protocol::PeerReply msg;
    PushRef push;  // not none: tell the core if the socket refuses it
  };
  std::vector<Reply> replies;
  // Data requests to peers (connected on first use, at `address`).
  struct PeerRequest {
    protocol::WorkerId peer;
    std::string address;
    protocol::PeerRequest msg;
  };
  std::vector<PeerRequest> to_peers;
  std::vector<protocol::WorkerId> peers_left;  // close their connections
  std::vector<Job> to_executor;                // hand to the executor threads
  bool trim_memory = false;                    // many freed bytes: give them back to the OS
  // For the spill files' I/O thread (spill_files.hpp), in order.
  struct Spill {
    enum class Kind : std::uint8_t { write, read, remove };
    Kind kind = Kind::write;
    std::uint64_t id = 0;
    std::uint64_t tag = 0;                   // write, read: DataStore's tag, echoed in the completion
    std::shared_ptr<const Payload> payload;  // write
  };
  std::vector<Spill> spill;

  void reply(std::string to, protocol::PeerReply m, PushRef push = {}) {
    replies.push_back(Reply{std::move(to), std::move(m), push});
  }
  bool empty() const {
    return to_scheduler.empty() && replies.empty() && to_peers.empty() && peers_left.empty() && to_executor.empty() &&
           spill.empty() && !trim_memory;
  }
};

}  // namespace dtask::worker

// ZeroMQ plumbing shared by every role: endpoints, CURVE + ZAP, batched multipart send/receive.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include <dtask/types.hpp>

#include "common/host.hpp"
#include "protocol/wire.hpp"

namespace dtask::transport {

// The IPv4 address of a network interface ("hsn0", "lo"), or an error that says why not.
struct AddressResult {
  std::string address;
  std::string error;
  bool ok() const { return error.empty(); }
};
AddressResult interface_address(const std::string& interface_name);
// Where to bind: the interface's address when one is named, else `host`.
AddressResult resolve_bind_host(const std::string& interface_name, const std::string& host);
using dtask::hostname;  // common/host.hpp: kept here for the roles that name it transport::hostname
// This host's address for others to reach when no interface is named: its hostname's IPv4 address.
std::string default_host();

// The largest frame any dtask socket accepts (ZMQ_MAXMSGSIZE; a bigger one drops the connection
// that sent it). Every frame counts on its own: the envelope of a batch, and each bulk frame (one
// per numeric vector argument or result). Default 8 GiB: results of several GiB are real on HPC
// nodes (the 64 MiB transfer test is far below it), and a cap, unlike an unlimited size, refuses
// a claimed length of 2^63 bytes before ZeroMQ tries to allocate it. A peer that really sends
// gigabytes is a memory matter, not a decoding one; lower the cap where that is a concern.
// Environment: DTASK_MAX_FRAME_BYTES=<bytes> (a suffix K, M, G or T is allowed; 0 = no cap).
inline constexpr std::int64_t kDefaultMaxFrameBytes = std::int64_t{8} << 30;
// The cap in force: DTASK_MAX_FRAME_BYTES if set and valid, else kDefaultMaxFrameBytes; -1 = no cap.
std::int64_t max_frame_bytes();
// Parses "123", "64M", "8G" (binary units); -1 if not a size. Exposed for tests.
std::int64_t parse_size(const std::string& text);

// Sockets: no silent drops (unbounded queues), a short linger so shutdown never blocks,
// TCP keepalive-style ZMTP heartbeats so dead peers are noticed, and the frame size cap above.
void configure_socket(zmq::socket_t& s);
void make_curve_server(zmq::socket_t& s, const Security& sec);
void make_curve_client(zmq::socket_t& s, const Security& sec);
// Binds to tcp://host:port (port 0 = ephemeral) and returns the endpoint actually bound.
std::string bind_tcp(zmq::socket_t& s, const std::string& host, int port = 0);

// Answers ZAP requests for one context: a CURVE peer is accepted only with the job's client
// public key. Without it nothing would stop a stranger who learned the server key.
class ZapAuthenticator {
 public:
  ZapAuthenticator(zmq::context_t& ctx, std::string allowed_client_public_z85);
  ~ZapAuthenticator();
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;
  std::uint64_t rejected() const { return rejected_.load(); }

 private:
  void run();
  zmq::socket_t socket_;
  std::string allowed_;  // 32 raw bytes
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> rejected_{0};
  std::thread thread_;
};

// One received multipart: [identity] envelope [bulk...]; bulk frames are zero-copy Buffers.
struct Received {
  std::string identity;  // only for ROUTER sockets
  int source_fd = -1;    // only for ROUTER sockets: the connection it came on (libzmq's ZMQ_SRCFD)
  zmq::message_t head;
  std::vector<Buffer> bulk;
};
// zmq::poll that treats a signal's EINTR as "nothing happened" (signals are how we get stopped).
int poll(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout);
// Non-blocking receive; nullopt when nothing is waiting.
std::optional<Received> try_recv(zmq::socket_t& s, bool router);
// Sends an encoded batch, bulk frames without copying. Returns false if the peer is unknown.
bool send_frames(zmq::socket_t& s, const std::string* identity, protocol::Frames&& frames);

template <class V>
bool send_batch(zmq::socket_t& s, const std::string* identity, const std::vector<V>& msgs) {
  return send_frames(s, identity, protocol::encode_batch(msgs));
}
template <class V>
protocol::Decoded<V> decode(const Received& r) {
  return protocol::decode_batch<V>(r.head.data(), r.head.size(), r.bulk);
}

// An eventfd that ZeroMQ can poll: other threads hand work to an event loop and wake it.
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  void notify();
  void drain();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

std::uint64_t now_ms();

// ---- connection events (libzmq's socket monitor), how a peer's death is seen before its silence
// A connection that closed and was not made again within this long: the peer is gone (ZeroMQ
// reconnects within ~100 ms to a peer that is still there). Workers and clients use it for the
// scheduler; the heartbeat silence stays the fallback for a peer that hangs with its sockets open.
inline constexpr std::uint64_t kReconnectGraceMs = 1000;
struct LinkEvent {
  std::uint16_t event = 0;  // ZMQ_EVENT_*
  std::int32_t value = 0;   // for (dis)connections: the connection's fd
};
// A PAIR socket in `ctx` receiving `events` about `s`'s connections (`inproc` must be unique in
// `ctx`). Throws std::runtime_error if libzmq refuses.
zmq::socket_t monitor_links(zmq::context_t& ctx, zmq::socket_t& s, const char* inproc, int events);
// The next event waiting on a monitor socket, without blocking.
std::optional<LinkEvent> next_link_event(zmq::socket_t& monitor);

}  // namespace dtask::transport

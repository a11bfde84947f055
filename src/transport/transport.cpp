// ZeroMQ plumbing shared by every role: endpoints, CURVE + ZAP, batched multipart send/receive.
#include "transport/transport.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace dtask {

Security Security::generate() {
  Security s;
  s.enabled = true;
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed: CURVE unsupported");
  s.server_public = pub;
  s.server_secret = sec;
  if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed: CURVE unsupported");
  s.client_public = pub;
  s.client_secret = sec;
  return s;
}

}  // namespace dtask

namespace dtask::transport {

AddressResult interface_address(const std::string& name) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {"", std::string("cannot list network interfaces: ") + std::strerror(errno)};
  bool exists = false;
  std::string found;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_name || name != a->ifa_name) continue;
    exists = true;
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET) {
      char buf[INET_ADDRSTRLEN];
      auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
      found = buf;
      break;
    }
  }
  freeifaddrs(list);
  if (!found.empty()) return {found, ""};
  if (!exists) return {"", "network interface '" + name + "' does not exist on host " + hostname()};
  return {"", "network interface '" + name + "' has no IPv4 address on host " + hostname()};
}

AddressResult resolve_bind_host(const std::string& interface_name, const std::string& host) {
  if (!interface_name.empty()) return interface_address(interface_name);
  if (host.empty()) return {"127.0.0.1", ""};
  return {host, ""};
}

std::string default_host() {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  std::string out = "127.0.0.1";
  if (getaddrinfo(hostname().c_str(), nullptr, &hints, &res) == 0 && res) {
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf, sizeof buf);
    out = buf;
  }
  if (res) freeaddrinfo(res);
  return out;
}

std::int64_t parse_size(const std::string& text) {
  if (text.empty()) return -1;
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    return -1;
  }
  if (text[0] == '-') return -1;
  int shift = 0;
  if (used + 1 == text.size()) {
    switch (text[used]) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      default: return -1;
    }
  } else if (used != text.size()) {
    return -1;
  }
  if (v > (static_cast<unsigned long long>(INT64_MAX) >> shift)) return -1;
  return static_cast<std::int64_t>(v << shift);
}

std::int64_t max_frame_bytes() {
  static const std::int64_t cap = [] {
    const char* env = std::getenv("DTASK_MAX_FRAME_BYTES");
    if (!env) return kDefaultMaxFrameBytes;
    std::int64_t v = parse_size(env);
    if (v < 0) return kDefaultMaxFrameBytes;
    return v == 0 ? std::int64_t{-1} : v;
  }();
  return cap;
}

void configure_socket(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, max_frame_bytes());
  s.set(zmq::sockopt::linger, 1000);
  s.set(zmq::sockopt::sndhwm, 0);
  s.set(zmq::sockopt::rcvhwm, 0);
  s.set(zmq::sockopt::heartbeat_ivl, 1000);
  s.set(zmq::sockopt::heartbeat_timeout, 5000);
  s.set(zmq::sockopt::heartbeat_ttl, 5000);
}

void make_curve_server(zmq::socket_t& s, const Security& sec) {
  if (!sec.enabled) return;
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, sec.server_secret);
  s.set(zmq::sockopt::zap_domain, "dtask");
}

void make_curve_client(zmq::socket_t& s, const Security& sec) {
  if (!sec.enabled) return;
  s.set(zmq::sockopt::curve_serverkey, sec.server_public);
  s.set(zmq::sockopt::curve_publickey, sec.client_public);
  s.set(zmq::sockopt::curve_secretkey, sec.client_secret);
}

std::string bind_tcp(zmq::socket_t& s, const std::string& host, int port) {
  std::string ep = "tcp://" + host + ":" + (port == 0 ? std::string("*") : std::to_string(port));
  // ZeroMQ listens with a backlog of 100: when a whole allocation's workers start at once, the
  // connections beyond it are dropped and retried by TCP a second later (1,000 workers took
  // 1.3 s to register, most of it that retry). The kernel caps this at net.core.somaxconn.
  s.set(zmq::sockopt::backlog, 4096);
  s.bind(ep);
  return s.get(zmq::sockopt::last_endpoint);
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& ctx, std::string allowed_z85)
    : socket_(ctx, zmq::socket_type::rep) {
  allowed_.resize(32);
  if (zmq_z85_decode(reinterpret_cast<std::uint8_t*>(allowed_.data()), allowed_z85.c_str()) == nullptr) {
    throw std::runtime_error("invalid CURVE client public key");
  }
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { run(); });
}

ZapAuthenticator::~ZapAuthenticator() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ZapAuthenticator::run() {
  while (!stop_) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (transport::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
    // ZAP request: version, request id, domain, address, identity, mechanism, credentials...
    std::vector<zmq::message_t> parts;
    while (true) {
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::none)) break;
      bool more = m.more();
      parts.push_back(std::move(m));
      if (!more) break;
    }
    if (parts.size() < 6) continue;
    bool ok = parts[5].to_string() == "CURVE" && parts.size() >= 7 && parts[6].to_string() == allowed_;
    if (!ok) ++rejected_;
    std::vector<std::string> reply = {"1.0", parts[1].to_string(), ok ? "200" : "400",
                                      ok ? "OK" : "unknown client key", "", ""};
    for (std::size_t i = 0; i < reply.size(); ++i) {
      socket_.send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

int poll(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, n, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    throw;
  }
}

std::optional<Received> try_recv(zmq::socket_t& s, bool router) {
  zmq::message_t first;
  try {
    if (!s.recv(first, zmq::recv_flags::dontwait)) return std::nullopt;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::nullopt;
    throw;
  }
  Received r;
  if (router) {
    r.identity = first.to_string();
    if (!first.more()) return std::nullopt;
    if (!s.recv(r.head, zmq::recv_flags::none)) return std::nullopt;
    // On the body frame: the routing id frame of a peer that set its own id carries no fd.
    r.source_fd = zmq_msg_get(r.head.handle(), ZMQ_SRCFD);
  } else {
    r.head = std::move(first);
  }
  bool more = r.head.more();
  while (more) {
    auto m = std::make_shared<zmq::message_t>();
    if (!s.recv(*m, zmq::recv_flags::none)) break;
    more = m->more();
    auto* data = static_cast<const std::byte*>(m->data());
    std::size_t size = m->size();
    r.bulk.emplace_back(std::shared_ptr<const void>(m, m.get()), data, size);
  }
  return r;
}

namespace {
void free_buffer(void*, void* hint) { delete static_cast<std::shared_ptr<const void>*>(hint); }
}  // namespace

bool send_frames(zmq::socket_t& s, const std::string* identity, protocol::Frames&& frames) {
  try {
    // The first frame never blocks: a DEALER with no usable connection (refused CURVE keys, a
    // vanished peer) would otherwise hang its whole event loop. Queues are unbounded, so a
    // refusal here means the connection is gone and the batch is dropped.
    bool has_bulk = !frames.bulk.empty();
    if (identity) {
      if (!s.send(zmq::buffer(*identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
      s.send(zmq::buffer(frames.head), has_bulk ? zmq::send_flags::sndmore : zmq::send_flags::none);
    } else {
      auto flags = (has_bulk ? zmq::send_flags::sndmore : zmq::send_flags::none) | zmq::send_flags::dontwait;
      if (!s.send(zmq::buffer(frames.head), flags)) return false;
    }
    for (std::size_t i = 0; i < frames.bulk.size(); ++i) {
      const Buffer& b = frames.bulk[i];
      auto* keep = new std::shared_ptr<const void>(b.owner());
      zmq::message_t m(const_cast<std::byte*>(b.data()), b.size(), &free_buffer, keep);
      s.send(m, i + 1 < frames.bulk.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    return true;
  } catch (const zmq::error_t&) {
    return false;
  }
}

Wakeup::Wakeup() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}
Wakeup::~Wakeup() {
  if (fd_ >= 0) close(fd_);
}
void Wakeup::notify() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = write(fd_, &one, sizeof one);
}
void Wakeup::drain() {
  std::uint64_t v;
  [[maybe_unused]] auto n = read(fd_, &v, sizeof v);
}

zmq::socket_t monitor_links(zmq::context_t& ctx, zmq::socket_t& s, const char* inproc, int events) {
  if (zmq_socket_monitor(s.handle(), inproc, events) != 0) {
    throw std::runtime_error(std::string("cannot watch a socket's connections: ") + zmq_strerror(zmq_errno()));
  }
  zmq::socket_t monitor(ctx, zmq::socket_type::pair);
  monitor.connect(inproc);
  return monitor;
}

std::optional<LinkEvent> next_link_event(zmq::socket_t& monitor) {
  // Two frames: [u16 event, u32 value], then the endpoint's address (not needed here).
  while (true) {
    zmq::message_t event, address;
    if (!monitor.recv(event, zmq::recv_flags::dontwait)) return std::nullopt;
    if (event.more()) (void)monitor.recv(address, zmq::recv_flags::dontwait);
    if (event.size() < 6) continue;
    LinkEvent e;
    std::memcpy(&e.event, event.data(), sizeof e.event);
    std::memcpy(&e.value, static_cast<const char*>(event.data()) + sizeof e.event, sizeof e.value);
    return e;
  }
}

std::uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

}  // namespace dtask::transport

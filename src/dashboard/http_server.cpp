// The dashboard's HTTP server: address rules, token check and the routes of docs/dashboard.md.
//
// Concurrency. Three kinds of thread touch a Server:
//  - the owner (the scheduler's loop) calls start(), publish() and the destructor;
//  - the listen thread (listener_, started here) runs httplib's accept loop until stop();
//  - httplib's bounded pool (kPoolThreads) runs the handlers, one request at a time each.
// The handlers read only what is immutable after start() (token_, link_, want_fresh_, the
// compiled-in assets) and the current Publication. `mu_` guards `current_` and `current_at_`: a
// handler copies the pointer under the lock and renders outside it, so publish() never waits for
// a slow client and a Publication is never changed once handed over. A handler that finds it
// older than kFreshMs calls want_fresh_ (the scheduler wakes its loop) and waits on `published_`
// (with mu_) at most kFreshWaitMs for the next. `last_read_ms_` is an atomic the loop reads to
// know whether anyone watches. Nothing a handler does reaches scheduler state.
// The destructor calls httplib's stop() (closes the listening socket, ends the accept loop) and
// joins the listen thread; httplib then joins its pool, whose keep-alive loops notice the stop
// within kKeepAliveSeconds, so the destructor returns within about a second.
#include "dashboard/http_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <charconv>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "common/host.hpp"
#include "dashboard/assets.hpp"
#include "dashboard/metrics.hpp"

namespace dtask::dashboard {
namespace {

constexpr int kDefaultPort = 8787;
constexpr int kLastFallbackPort = 8887;  // default address: 8787, else the next free one up to here
constexpr size_t kPoolThreads = 4;
constexpr time_t kKeepAliveSeconds = 1;
constexpr time_t kIoTimeoutSeconds = 2;

struct Address {
  std::string host;
  int port = 0;
  bool fallback = false;  // the default port: move on to the next free one when taken
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
}

int parse_port(const std::string& text, const std::string& whole) {
  int port = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || port < 0 || port > 65535)
    throw std::runtime_error("dashboard address '" + whole + "': '" + text +
                             "' is not a port (0-65535); expected ':PORT', 'HOST:PORT', 'PORT' or 'none'");
  return port;
}

// nullopt-like: returns false for "none"/"false"/"off".
bool parse_address(const std::string& raw, const std::string& default_host, Address& out) {
  std::string a = trim(raw);
  if (a == "none" || a == "false" || a == "off") return false;
  out.host = default_host.empty() ? "127.0.0.1" : default_host;
  if (a.empty()) {
    out.port = kDefaultPort;
  } else if (a.front() == '[') {  // [IPv6]:PORT
    size_t close = a.find(']');
    if (close == std::string::npos || close + 1 >= a.size() || a[close + 1] != ':')
      throw std::runtime_error("dashboard address '" + a + "': expected '[HOST]:PORT'");
    out.host = a.substr(1, close - 1);
    out.port = parse_port(a.substr(close + 2), a);
  } else if (size_t colon = a.rfind(':'); colon != std::string::npos) {
    if (colon > 0) out.host = a.substr(0, colon);
    if (out.host.find(':') != std::string::npos)
      throw std::runtime_error("dashboard address '" + a + "': write an IPv6 host as '[HOST]:PORT'");
    out.port = parse_port(a.substr(colon + 1), a);
  } else {
    out.port = parse_port(a, a);
  }
  out.fallback = out.port == kDefaultPort;
  return true;
}

// Why `host:port` cannot be listened on, for the error message (httplib only says false).
std::string bind_failure(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0)
    return std::string("cannot resolve the host: ") + gai_strerror(rc);
  std::string reason = "cannot listen";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) { reason = std::strerror(errno); continue; }
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1) != 0) reason = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(res);
  return reason;
}

bool equal_constant_time(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string cookie_value(const std::string& header, const std::string& name) {
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string part = trim(header.substr(pos, end - pos));
    if (part.size() > name.size() && part.compare(0, name.size(), name) == 0 && part[name.size()] == '=')
      return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return {};
}

}  // namespace

struct Server::Impl {
  std::string token_;
  std::string link_;
  int port_ = 0;
  httplib::Server http_;
  std::thread listener_;
  std::atomic<bool> listen_returned_{false};
  std::mutex mu_;
  std::shared_ptr<const Publication> current_;  // guarded by mu_
  std::uint64_t current_at_ = 0;                 // when current_ was published (steady ms); mu_
  std::condition_variable published_;            // with mu_: a new publication arrived
  std::function<void()> want_fresh_;             // set once before serving
  // When a snapshot or /metrics was last read (steady clock, ms): the scheduler renders
  // snapshots often only while someone reads them (Server::last_read_ms).
  std::atomic<std::uint64_t> last_read_ms_{0};
  static std::uint64_t steady_ms() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
  // A reader's publication: the last one if it is recent, else (with want_fresh_) the next one.
  std::shared_ptr<const Publication> fresh() {
    const std::uint64_t t0 = steady_ms();
    last_read_ms_ = t0;
    std::unique_lock lock(mu_);
    if (!want_fresh_ || (current_ && current_at_ + kFreshMs >= t0)) return current_;
    want_fresh_();
    published_.wait_for(lock, std::chrono::milliseconds(kFreshWaitMs), [&] { return current_ && current_at_ >= t0; });
    return current_;
  }


  bool authorised(const httplib::Request& req) const {
    if (req.has_param("token") && equal_constant_time(req.get_param_value("token"), token_)) return true;
    for (size_t i = 0; i < req.get_header_value_count("Cookie"); ++i)
      if (equal_constant_time(cookie_value(req.get_header_value("Cookie", i), "dtask_token"), token_)) return true;
    std::string auth = req.get_header_value("Authorization");
    return auth.rfind("Bearer ", 0) == 0 && equal_constant_time(trim(auth.substr(7)), token_);
  }

  void routes() {
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method != "GET" && req.method != "HEAD") {
        res.status = 405;
        res.set_header("Allow", "GET, HEAD");
        res.set_content("method not allowed: the dashboard is read-only\n", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!authorised(req)) {
        res.status = 403;
        res.set_content("forbidden: open the dashboard link with its token\n", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      }
      res.set_header("Cache-Control", "no-store");
      res.set_header("X-Content-Type-Options", "nosniff");
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http_.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
      res.set_redirect(req.has_param("token") ? "/status?token=" + token_ : "/status");
    });
    http_.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Set-Cookie", "dtask_token=" + token_ + "; Path=/; HttpOnly; SameSite=Strict");
      res.set_content(status_page(), "text/html; charset=utf-8");
    });
    http_.Get(R"(/static/(.+))", [](const httplib::Request& req, httplib::Response& res) {
      const Asset* a = find_asset(req.matches[1].str());
      if (!a) {
        res.status = 404;
        res.set_content("no such asset\n", "text/plain");
        return;
      }
      res.set_content(std::string(a->data), std::string(a->content_type));
    });
    http_.Get("/api/snapshot", [this](const httplib::Request&, httplib::Response& res) {
      auto p = fresh();
      if (!p) {
        res.status = 503;
        res.set_content(R"({"error":"no snapshot published yet"})", "application/json");
        return;
      }
      // With a charset, httplib 0.11 does not compress it: brotli at its default quality cost the
      // scheduler's process more than rendering the snapshot (W11), for a page read on a LAN or
      // through an SSH tunnel.
      res.set_content(p->snapshot_text, "application/json; charset=utf-8");
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      auto p = fresh();
      res.set_content(render_metrics(p ? p->snapshot : nlohmann::json::object()),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      res.status = 500;
      res.set_content("internal error\n", "text/plain");
    });
  }

  // status.html with its CSS and JS inline: one request, no asset URL that would need the token.
  static const std::string& status_page() {
    static const std::string page = [] {
      const std::string licence = html_escaped(asset_text("vendor/uplot/LICENSE"));
      return fill_marks(asset_text("status.html"), {{"/*@PAGE_ERRORS_JS@*/", asset_text("page_errors.js")},
                                                   {"/*@UPLOT_CSS@*/", asset_text("vendor/uplot/uPlot.min.css")},
                                                   {"/*@DASHBOARD_CSS@*/", asset_text("dashboard.css")},
                                                   {"@UPLOT_LICENSE@", licence},
                                                   {"/*@UPLOT_JS@*/", asset_text("vendor/uplot/uPlot.iife.min.js")},
                                                   {"/*@CHARTS_JS@*/", asset_text("charts.js")},
                                                   {"/*@DASHBOARD_JS@*/", asset_text("dashboard.js")}});
    }();
    return page;
  }
};

std::unique_ptr<Server> Server::start(const ServerOptions& options) {
  Address addr;
  if (!parse_address(options.address, options.default_host, addr)) return nullptr;
  if (options.token.empty()) throw std::runtime_error("dashboard: no token given");
  auto log = options.log ? options.log : spdlog::default_logger();

  std::unique_ptr<Server> server(new Server());
  server->impl_ = std::make_unique<Impl>();
  Impl& s = *server->impl_;
  s.token_ = options.token;
  s.want_fresh_ = options.want_fresh;
  s.routes();
  // SO_REUSEADDR only: httplib's default SO_REUSEPORT would let a second scheduler share a
  // taken port instead of failing (or moving on from 8787).
  s.http_.set_socket_options([](int fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.http_.new_task_queue = [] { return new httplib::ThreadPool(kPoolThreads); };
  s.http_.set_keep_alive_max_count(20);
  s.http_.set_keep_alive_timeout(kKeepAliveSeconds);
  s.http_.set_read_timeout(kIoTimeoutSeconds);
  s.http_.set_write_timeout(kIoTimeoutSeconds);
  s.http_.set_payload_max_length(64 * 1024);

  std::string shown = addr.host.find(':') != std::string::npos ? "[" + addr.host + "]" : addr.host;
  if (addr.port == 0) {
    s.port_ = s.http_.bind_to_any_port(addr.host);
    if (s.port_ <= 0)
      throw std::runtime_error("dashboard address " + shown + ":0: " + bind_failure(addr.host, 0));
  } else {
    int last = addr.fallback ? kLastFallbackPort : addr.port;
    for (int port = addr.port; port <= last && s.port_ == 0; ++port)
      if (s.http_.bind_to_port(addr.host, port)) s.port_ = port;
    if (s.port_ == 0) {
      std::string why = bind_failure(addr.host, addr.port);
      throw std::runtime_error("dashboard address " + shown + ":" + std::to_string(addr.port) + ": " + why +
                               (addr.fallback ? " (and no free port up to " + std::to_string(last) + ")" : ""));
    }
    if (s.port_ != addr.port)
      log->warn("dashboard: port {} is taken; serving on port {} instead", addr.port, s.port_);
  }
  std::string link_host = shown;
  if (addr.host == "0.0.0.0" || addr.host == "::" || addr.host.empty()) link_host = hostname();
  s.link_ = "http://" + link_host + ":" + std::to_string(s.port_) + "/status?token=" + s.token_;
  s.listener_ = std::thread([&s] {
    s.http_.listen_after_bind();
    s.listen_returned_ = true;
  });
  // httplib's stop() does nothing before its loop runs: wait for it, so that a Server destroyed
  // at once still stops (and start() returns with requests already served).
  while (!s.http_.is_running() && !s.listen_returned_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return server;
}

Server::~Server() {
  if (!impl_) return;
  impl_->http_.stop();
  if (impl_->listener_.joinable()) impl_->listener_.join();
}

const std::string& Server::link() const { return impl_->link_; }
int Server::port() const { return impl_->port_; }
std::uint64_t Server::last_read_ms() const { return impl_->last_read_ms_.load(); }

void Server::publish(std::shared_ptr<const Publication> p) {
  {
    std::lock_guard lock(impl_->mu_);
    impl_->current_ = std::move(p);
    impl_->current_at_ = Impl::steady_ms();
  }
  impl_->published_.notify_all();
}

std::string make_token() {
  unsigned char bytes[16];
  std::ifstream in("/dev/urandom", std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(bytes), sizeof bytes))
    throw std::runtime_error("dashboard: cannot read /dev/urandom for the token");
  static const char hex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += hex[b >> 4];
    token += hex[b & 15];
  }
  return token;
}

}  // namespace dtask::dashboard

// The client's connection: start and close, submit, the outgoing flush, and the I/O thread.
//
// Threads, sockets and locks: see connection.hpp, the one place they are written down. The fast
// paths live beside this file: pushed_results.cpp, early_start.cpp, spin_wait.cpp.
#include <algorithm>
#include <cstdio>
#include <random>

#include "client/connection.hpp"
#include "common/drop_log.hpp"

namespace dtask::detail {

using namespace protocol;

namespace {
std::string random_identity() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "client-%08x%08x%08x", static_cast<unsigned>(rd()), static_cast<unsigned>(rd()),
                static_cast<unsigned>(rd()));
  return buf;
}

constexpr std::size_t kSubmitChunk = 10000;      // tasks per SubmitTasks message
constexpr std::uint64_t kFetchTimeoutMs = 15000; // a worker that does not answer a fetch
// Submissions up to this many tasks are sent by the submitting thread; bigger ones are
// encoded and sent by the I/O thread, so map() of a million tasks returns promptly.
constexpr std::size_t kDirectSendTasks = 64;
}  // namespace

ClientCore::ClientCore(ConnectOptions options)
    : opt_(std::move(options)), data_identity_(random_identity()), next_nonce_(std::random_device{}() | 1) {
  log_ = log::make("client", opt_.name);
  transport::configure_socket(sched_);
  transport::make_curve_client(sched_, opt_.security);
  monitor_ = transport::monitor_links(ctx_, sched_, "inproc://dtask-client-scheduler-link",
                                     ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
}

ClientCore::~ClientCore() { close(); }

void ClientCore::start() {
  try {
    sched_.connect(opt_.address);
  } catch (const zmq::error_t& e) {
    throw ConnectionError("cannot connect to scheduler at '" + opt_.address + "': " + e.what());
  }
  post(RegisterClient{kProtocolVersion, opt_.name, data_identity_});
  io_ = std::thread([this] {
    io_id_.store(std::this_thread::get_id());
    io_loop();
  });
  std::unique_lock lock(mutex_);
  bool ok = cv_.wait_for(lock, opt_.connect_timeout, [&] { return welcomed_ || !connection_error_.empty(); });
  if (!ok || !connection_error_.empty()) {
    std::string why = connection_error_.empty()
                          ? "no answer from the scheduler at " + opt_.address + " within " +
                                std::to_string(opt_.connect_timeout.count() / 1000) +
                                " s (is it running, and are the security keys right?)"
                          : connection_error_;
    lock.unlock();
    close();
    throw ConnectionError(why);
  }
}

void ClientCore::close() {
  {
    std::lock_guard lock(mutex_);
    if (!closing_ && welcomed_ && connection_error_.empty()) outgoing_.push(ClientGoodbye{0});
    closing_ = true;
  }
  wakeup_.notify();
  if (io_.joinable() && std::this_thread::get_id() != io_.get_id()) io_.join();
  fail_all_pending("the client was closed");
}

void ClientCore::post(ClientToScheduler m) {
  {
    std::lock_guard lock(mutex_);
    outgoing_.push(std::move(m));
  }
  wakeup_.notify();
}

std::vector<FutureRefPtr> ClientCore::submit(std::vector<TaskSpec> specs, const std::vector<std::string>& outputs) {
  std::vector<FutureRefPtr> refs;
  refs.reserve(outputs.size());
  // A small submit is usually waited for at once (submit().result()): its results come
  // straight from the worker (pushed_results.cpp). Big ones would only double the messages
  // arriving here.
  const bool small = specs.size() <= kDirectSendTasks;
  const bool push = small && opt_.fast_paths.push_results;
  if (push) {
    for (auto& spec : specs) spec.push_result = spec.wanted;
  }
  std::optional<EarlyStart> early;
  bool wake_io = false;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || closing_) throw ConnectionError("the client is closed");
    if (!connection_error_.empty()) throw ConnectionError(connection_error_);
    if (specs.size() == 1) early = early_start_for(specs.front());  // early_start.cpp
    for (const auto& key : outputs) {
      auto& st = states_[key];
      if (!st) {
        st = std::make_shared<FutureState>();
        st->key = key;
      }
      ++st->refs;
      if (push) st->push = true;
      refs.push_back(std::make_shared<FutureRef>(shared_from_this(), st));
    }
    if (early) {
      // Held back: the worker answers first, and the scheduler hears of it with the next batch.
      wake_io = outgoing_.due_ms() == 0;  // nothing held yet: the I/O thread must time this
      outgoing_.hold(SubmitTasks{std::move(specs)}, transport::now_ms());
    } else {
      for (std::size_t i = 0; i < specs.size(); i += kSubmitChunk) {
        SubmitTasks m;
        auto end = std::min(specs.size(), i + kSubmitChunk);
        m.tasks.assign(std::make_move_iterator(specs.begin() + static_cast<std::ptrdiff_t>(i)),
                       std::make_move_iterator(specs.begin() + static_cast<std::ptrdiff_t>(end)));
        outgoing_.push(std::move(m));
      }
    }
  }
  if (early) {
    if (start_early(*early)) {
      if (wake_io) wakeup_.notify();
      return refs;
    }
    flush_outgoing(true);  // the StartTask could not go: its held submit goes now
  } else if (small) {
    flush_outgoing();
  } else {
    wakeup_.notify();
  }
  return refs;
}

ClientCounters ClientCore::counters() {
  std::lock_guard lock(mutex_);
  return ClientCounters{results_pushed_, early_starts_, early_not_started_};
}

void ClientCore::flush_outgoing(bool force) {
  std::lock_guard sock(sock_mutex_);
  std::vector<ClientToScheduler> out;
  {
    std::lock_guard lock(mutex_);
    out = outgoing_.take_due(transport::now_ms(), force || closing_);
  }
  if (out.empty()) return;
  // Batched, but a big graph still goes out in chunks of about kSubmitChunk tasks per
  // message, so the scheduler takes it in piece by piece and keeps answering meanwhile.
  std::vector<ClientToScheduler> batch;
  std::size_t batch_tasks = 0;
  for (auto& m : out) {
    if (auto* sub = std::get_if<SubmitTasks>(&m)) batch_tasks += sub->tasks.size();
    batch.push_back(std::move(m));
    if (batch_tasks >= kSubmitChunk) {
      transport::send_batch(sched_, nullptr, batch);
      batch.clear();
      batch_tasks = 0;
    }
  }
  if (!batch.empty()) transport::send_batch(sched_, nullptr, batch);
  rearm_io_poll();
}

void ClientCore::rearm_io_poll() {
  if (std::this_thread::get_id() == io_id_.load()) return;  // it looks before it polls
  try {
    if ((sched_.get(zmq::sockopt::events) & ZMQ_POLLIN) ||
        (early_sock_ && (early_sock_->get(zmq::sockopt::events) & ZMQ_POLLIN))) {
      wakeup_.notify();
    }
  } catch (const zmq::error_t&) {
    wakeup_.notify();
  }
}

nlohmann::json ClientCore::info(const std::string& what, std::uint64_t since_ms, std::chrono::milliseconds timeout) {
  std::uint64_t rid;
  {
    std::lock_guard lock(mutex_);
    if (!connection_error_.empty()) throw ConnectionError(connection_error_);
    rid = next_request_++;
    outgoing_.push(InfoRequest{rid, what, since_ms});
  }
  wakeup_.notify();
  std::unique_lock lock(mutex_);
  bool ok = cv_.wait_for(lock, timeout, [&] { return infos_.count(rid) > 0 || !connection_error_.empty() || stopped_; });
  if (!connection_error_.empty()) throw ConnectionError(connection_error_);
  if (!ok || !infos_.count(rid)) throw TimeoutError("the scheduler did not answer an info request" +
                                                     (what.empty() ? std::string() : " (\"" + what + "\")") + " in time");
  auto j = std::move(infos_[rid]);
  infos_.erase(rid);
  return j;
}

std::string ClientCore::dashboard_link() {
  std::lock_guard lock(mutex_);
  return dashboard_link_;
}

void ClientCore::shutdown_cluster(int code) {
  post(ShutdownCluster{code});
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, std::chrono::seconds(10), [&] { return cluster_closing_ || stopped_ || !connection_error_.empty(); });
}

void ClientCore::retire_workers(std::vector<std::string> names) { post(RetireWorkers{std::move(names)}); }

void ClientCore::fail_all_pending(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    for (auto& [k, s] : states_) {
      if (s->status == FutureStatus::pending) {
        s->status = FutureStatus::error;
        s->error = why;
        s->error_func = "(none)";
      } else if (s->status == FutureStatus::finished && !s->data && s->fetch_error.empty()) {
        s->fetch_error = why;
      }
    }
  }
  wake_waiters();
}

// ---------------------------------------------------------------------------------------------
// ClientCore: I/O thread side

void ClientCore::on(ClientWelcome& m) {
  std::lock_guard lock(mutex_);
  dashboard_link_ = std::move(m.dashboard_link);
  welcomed_ = true;
}
void ClientCore::on(Rejected& m) {
  std::lock_guard lock(mutex_);
  connection_error_ = "the scheduler refused this client: " + m.reason;
}
void ClientCore::on(KeyDone& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  auto& s = *it->second;
  if (s.status == FutureStatus::cancelled) return;
  s.status = FutureStatus::finished;
  s.task = m.task;
  s.holders = std::move(m.holders);
  s.fetch_attempt = 0;
  if (m.has_data && !s.data) s.data = std::move(m.data);
  if (s.auto_fetch && !s.data) request_fetch(s);
  // Be connected to where it ran, so the next results pushed from there reach us.
  if (s.push && !s.holders.empty()) data_conn(s.holders.front());
}
zmq::socket_t& ClientCore::data_conn(const std::string& address) {
  auto& conn = data_conns_[address];
  if (!conn.socket) {
    conn.socket = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    transport::configure_socket(*conn.socket);
    conn.socket->set(zmq::sockopt::routing_id, data_identity_);
    transport::make_curve_client(*conn.socket, opt_.security);
    conn.socket->connect(address);
  }
  return *conn.socket;
}
void ClientCore::on(KeyErred& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  auto& s = *it->second;
  s.status = FutureStatus::error;
  s.error = std::move(m.message);
  s.error_func = std::move(m.func);
}
void ClientCore::on(KeyCancelled& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  it->second->status = FutureStatus::cancelled;
  it->second->error = m.reason;
}
void ClientCore::on(KeyLost& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  auto& s = *it->second;
  if (s.data) return;  // we already have it
  s.status = FutureStatus::pending;
  s.holders.clear();
}
void ClientCore::on(InfoReply& m) {
  std::lock_guard lock(mutex_);
  infos_[m.request_id] = std::move(m.info);
}
void ClientCore::on(Heartbeat&) {}
void ClientCore::on(ClusterClosing& m) {
  std::function<void(int, const std::string&)> handler;
  {
    std::lock_guard lock(mutex_);
    cluster_closing_ = true;
    handler = end_handler_;
  }
  if (handler) handler(m.code, m.reason);
}

void ClientCore::set_end_handler(std::function<void(int, const std::string&)> handler) {
  std::lock_guard lock(mutex_);
  end_handler_ = std::move(handler);
}

void ClientCore::send_fetches(std::uint64_t now) {
  std::vector<std::shared_ptr<FutureState>> queue;
  {
    std::lock_guard lock(mutex_);
    queue.swap(fetch_queue_);
  }
  std::unordered_map<std::string, std::vector<std::shared_ptr<FutureState>>> by_address;
  {
    std::lock_guard lock(mutex_);
    for (auto& s : queue) {
      if (s->holders.empty()) {
        s->fetching = false;  // lost meanwhile; fetched again once recomputed
        continue;
      }
      by_address[s->holders[s->fetch_attempt % s->holders.size()]].push_back(s);
    }
  }
  for (auto& [address, states] : by_address) {
    auto& socket = data_conn(address);
    GetData req;
    req.request_id = next_data_request_++;
    for (auto& s : states) req.tasks.push_back(s->task);
    transport::send_batch(socket, nullptr, std::vector<PeerRequest>{req});
    data_requests_[req.request_id] = DataRequest{address, std::move(states), now};
  }
}

void ClientCore::on_data(DataReply& reply) {
  auto it = data_requests_.find(reply.request_id);
  if (it == data_requests_.end()) return;
  auto states = std::move(it->second.states);
  data_requests_.erase(it);
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < states.size() && i < reply.items.size(); ++i) {
    auto& s = *states[i];
    auto& item = reply.items[i];
    s.fetching = false;
    if (item.found) {
      s.data = std::move(item.data);
    } else {
      ++s.fetch_attempt;
      if (s.fetch_attempt >= s.holders.size() + 3) {
        s.fetch_error = "result of " + s.key + " is not on any worker that should hold it";
      }
    }
  }
}

void ClientCore::io_loop() {
  std::uint64_t last_heard = transport::now_ms(), last_beat = 0;
  std::uint64_t link_down_since = 0;  // when sched_'s connection closed (monitor_), 0: up
  log::DropLimiter bad_input;  // bad messages: logged once per peer, then rate-limited
  const int sched_fd = [&] {
    std::lock_guard sock(sock_mutex_);
    return static_cast<int>(sched_.get(zmq::sockopt::fd));
  }();
  while (true) {
    bool closing;
    {
      std::lock_guard lock(mutex_);
      closing = closing_;
    }
    flush_outgoing();
    if (closing) break;
    std::uint64_t now = transport::now_ms();
    send_fetches(now);

    // sched_ is polled through its bare ZMQ_FD (see sock_mutex_), which only signals changes:
    // when a message is already waiting, the poll must not block.
    bool readable;
    int early_fd = -1;
    {
      std::lock_guard sock(sock_mutex_);
      readable = (sched_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
      if (early_sock_ && spinners_.load(std::memory_order_acquire) == 0) {
        early_fd = static_cast<int>(early_sock_->get(zmq::sockopt::fd));
        readable = readable || (early_sock_->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
      }
    }
    std::vector<zmq::pollitem_t> items = {{nullptr, sched_fd, ZMQ_POLLIN, 0}, {nullptr, wakeup_.fd(), ZMQ_POLLIN, 0},
                                          {nullptr, early_fd, static_cast<short>(early_fd >= 0 ? ZMQ_POLLIN : 0), 0},
                                          {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    constexpr std::size_t kFixedItems = 4;  // the data sockets' items follow
    std::vector<std::pair<zmq::socket_t*, const std::string*>> data_socks;
    for (auto& [address, c] : data_conns_) {
      items.push_back({c.socket->handle(), 0, ZMQ_POLLIN, 0});
      data_socks.emplace_back(c.socket.get(), &address);
    }
    std::uint64_t wait_ms = readable ? 0 : 250;
    {
      std::lock_guard lock(mutex_);
      if (const std::uint64_t due = outgoing_.due_ms(); due != 0) wait_ms = std::min(wait_ms, due > now ? due - now : 0);
    }
    transport::poll(items.data(), items.size(), std::chrono::milliseconds(wait_ms));
    now = transport::now_ms();
    if (items[1].revents & ZMQ_POLLIN) wakeup_.drain();
    if (items[3].revents & ZMQ_POLLIN) {
      while (auto e = transport::next_link_event(monitor_)) {
        if (e->event == ZMQ_EVENT_DISCONNECTED && link_down_since == 0) link_down_since = std::max<std::uint64_t>(now, 1);
        if (e->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) link_down_since = 0;
      }
    }
    bool changed = false, not_started = false;
    std::vector<transport::Received> received;
    {
      std::lock_guard sock(sock_mutex_);
      while (auto r = transport::try_recv(sched_, false)) received.push_back(std::move(*r));
      if (early_fd >= 0) not_started = take_early_replies();
    }
    if (!received.empty()) last_heard = now;
    for (auto& r : received) {
      auto d = transport::decode<SchedulerToClient>(r);
      if (!d.ok()) {
        if (d.peer_version != 0 && d.peer_version != kProtocolVersion) {
          std::lock_guard lock(mutex_);
          connection_error_ = d.error;
        } else {
          log::warn_limited(*log_, bad_input, "scheduler", now, "dropping a bad message from the scheduler: " + d.error);
        }
        changed = true;
        continue;
      }
      for (auto& m : d.messages) std::visit([&](auto& x) { on(x); }, m);
      changed = true;
    }
    for (std::size_t i = 0; i < data_socks.size(); ++i) {
      if (!(items[kFixedItems + i].revents & ZMQ_POLLIN)) continue;
      while (auto r = transport::try_recv(*data_socks[i].first, false)) {
        auto d = transport::decode<PeerReply>(*r);
        if (!d.ok()) {
          log::warn_limited(*log_, bad_input, *data_socks[i].second, now,
                            "dropping a bad message from worker " + *data_socks[i].second + ": " + d.error);
          continue;
        }
        for (auto& m : d.messages) {
          if (auto* reply = std::get_if<DataReply>(&m)) on_data(*reply);
          else if (auto* pushed = std::get_if<ResultPushed>(&m)) on_pushed(*pushed, *data_socks[i].second);
        }
        changed = true;
      }
    }
    // A StartTask the worker did not take: the scheduler must hear of that task now.
    if (not_started) flush_outgoing(true);
    // A worker that does not answer: ask the next holder.
    std::vector<std::uint64_t> expired;
    for (auto& [rid, r] : data_requests_) {
      if (now > r.sent_ms + kFetchTimeoutMs) expired.push_back(rid);
    }
    for (auto rid : expired) {
      auto states = std::move(data_requests_[rid].states);
      data_requests_.erase(rid);
      std::lock_guard lock(mutex_);
      for (auto& s : states) {
        s->fetching = false;
        if (++s->fetch_attempt >= s->holders.size() + 3) s->fetch_error = "no worker answered a request for " + s->key;
      }
      changed = true;
    }
    if (now >= last_beat + 500) {
      std::lock_guard sock(sock_mutex_);
      transport::send_batch(sched_, nullptr, std::vector<ClientToScheduler>{Heartbeat{now}});
      last_beat = now;
    }
    bool lost = false, closed = false;
    {
      std::lock_guard lock(mutex_);
      if (cluster_closing_ && link_down_since != 0 && connection_error_.empty()) {
        // The scheduler said the cluster closes, then went: expected, nothing to report.
        connection_error_ = "the cluster at " + opt_.address + " has shut down";
        closed = true;
      } else if (welcomed_ && link_down_since != 0 && now > link_down_since + transport::kReconnectGraceMs &&
                 connection_error_.empty()) {
        connection_error_ = "lost the scheduler at " + opt_.address + " (its connection closed and was not made again within " +
                            std::to_string(transport::kReconnectGraceMs) + " ms)";
        lost = true;
      } else if (welcomed_ && now > last_heard + static_cast<std::uint64_t>(opt_.scheduler_timeout.count()) &&
                 connection_error_.empty()) {
        connection_error_ = "lost the scheduler at " + opt_.address + " (silent for " +
                            std::to_string(opt_.scheduler_timeout.count() / 1000) + " s)";
        lost = true;
      }
    }
    if (closed || lost) {
      fail_all_pending(connection_error_);
      changed = true;
    }
    if (lost) {
      std::function<void(int, const std::string&)> handler;
      {
        std::lock_guard lock(mutex_);
        handler = end_handler_;
      }
      if (handler) handler(1, connection_error_);
      else log_->error("{}", connection_error_);  // the one line; an end handler says it itself
    }
    if (changed) wake_waiters();
  }
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  wake_waiters();
}

}  // namespace dtask::detail

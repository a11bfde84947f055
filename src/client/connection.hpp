// The client's connection (ClientCore): its sockets, its I/O thread, and the futures' shared state.
//
// This header is the one place the client's concurrency is written down; the .cpp files of
// src/client refer here.
//
// THREADS
//   User threads   call submit, result/gather/wait, cancel and drop futures (FutureRef's
//                  destructor), any number of them at once.
//   The I/O thread runs io_loop (connection.cpp) from start() to close().
//
// SOCKETS, AND WHO USES THEM
//   sched_       DEALER to the scheduler. Any thread, always under sock_mutex_. The I/O thread
//                receives on it, sends heartbeats and whatever others queued; a thread that
//                submits a small graph sends it itself (flush_outgoing): one thread hand-off
//                less per round trip, which is most of the W3 latency budget.
//   early_sock_  ROUTER connected to the data servers of the early starts' targets, each
//                connection named by its address (StartTask out; ResultPushed/NotStarted back). Under sock_mutex_. Created and sent on by
//                the submitting thread (send_early); drained by a thread spinning for a result
//                (take_early_replies, via try_lock), otherwise by the I/O thread.
//   data_conns_  one DEALER per worker data server (GetData out; DataReply/ResultPushed back).
//                I/O thread only, no lock.
//   wakeup_      an eventfd: any thread notifies, only the I/O thread waits on and drains it.
//   monitor_     PAIR receiving libzmq's events about sched_'s connection (closed, made again).
//                Set up by the constructor before the I/O thread starts, then I/O thread only, no
//                lock: a connection closed and not made again within a second means the scheduler
//                is gone (the heartbeat silence, scheduler_timeout, stays the fallback).
//
// LOCKS
//   sock_mutex_  sched_, early_sock_, early_connected_.
//   mutex_       everything else shared: states_ and every FutureState, outgoing_, fetch_queue_,
//                infos_, dashboard_link_, the early-start targets (early_targets_, early_key_),
//                the counters, next_nonce_, the flags (welcomed_, closing_, stopped_,
//                cluster_closing_, connection_error_) and end_handler_. cv_ goes with it.
//   Order        sock_mutex_ before mutex_ (take_early_replies -> on_pushed takes mutex_ under
//                sock_mutex_); never the other way round. Sends never block (unbounded queues,
//                the first frame sent with dontwait: transport::send_frames), so holding
//                sock_mutex_ while sending stalls no one for long. The end handler is called
//                with no lock held.
//
// HAND-OVER BETWEEN A WAITING THREAD AND THE I/O THREAD
//   - Whoever changes future states calls wake_waiters(): it bumps progress_ and notifies cv_.
//   - A thread in fetch() (one result) first spins, without mutex_, until progress_ moves
//     (spin_wait.cpp; only while recent waits were short, and only with FastPaths::spin_wait);
//     then it sleeps on cv_. gather/wait/wait_any sleep on cv_ at once.
//   - While it spins it takes early_sock_'s answers itself (the StartTask's ResultPushed is the
//     very result it waits for). It counts itself in spinners_; while spinners_ > 0 the I/O
//     thread leaves early_sock_ out of its poll, and a spinner that gives up notifies wakeup_
//     so that the I/O thread polls early_sock_ again.
//   - The I/O thread polls sched_ and early_sock_ through their bare ZMQ_FD, without
//     sock_mutex_. That fd only signals changes, and another thread's send or receive on the
//     socket may consume the change while a message waits; so that thread calls
//     rearm_io_poll() afterwards (looks at ZMQ_EVENTS, notifies wakeup_ if a message waits).
//     The spinner skips it for early_sock_: it drains that socket dry, leaving nothing to miss
//     (each ZMQ_EVENTS look costs libzmq a poll syscall).
//   - What to send is decided under mutex_ (outgoing_, a pure OutgoingQueue); sending takes
//     sock_mutex_ first (flush_outgoing), so the messages leave in the order they were queued.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include <dtask/client.hpp>

#include "client/early_start.hpp"
#include "client/internal.hpp"
#include "client/outgoing.hpp"
#include "client/progress_bar.hpp"
#include "common/log.hpp"
#include "protocol/messages.hpp"
#include "transport/spin.hpp"
#include "transport/transport.hpp"

namespace dtask::detail {

// One key as this client knows it. Guarded by ClientCore::mutex_.
class FutureState {
 public:
  std::string key;
  FutureStatus status = FutureStatus::pending;
  protocol::TaskId task;
  std::vector<std::string> holders;
  std::string error, error_func;
  std::optional<Payload> data;
  bool fetching = false;
  bool auto_fetch = false;        // gather() waits for it: fetch as soon as it is done
  std::size_t fetch_attempt = 0;  // which holder to ask next
  std::string fetch_error;
  std::size_t refs = 0;  // live FutureRefs; at 0 the key is released on the cluster
  bool push = false;     // submitted with push_result: connect to the worker that computes it
};

// All Future<T> copies made from one submission share one FutureRef; when the last goes, the
// client tells the scheduler it no longer wants the key (Dask's "released" futures).
class FutureRef {
 public:
  FutureRef(std::shared_ptr<ClientCore> core, std::shared_ptr<FutureState> state);
  ~FutureRef();
  FutureRef(const FutureRef&) = delete;
  FutureRef& operator=(const FutureRef&) = delete;
  const std::string& key() const { return state_->key; }
  ClientCore& core() const { return *core_; }
  FutureState& state() const { return *state_; }

 private:
  std::shared_ptr<ClientCore> core_;
  std::shared_ptr<FutureState> state_;
};

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  explicit ClientCore(ConnectOptions options);
  ~ClientCore();

  void start();  // connects and waits for the welcome; throws ConnectionError
  void close();

  // connection.cpp
  std::vector<FutureRefPtr> submit(std::vector<protocol::TaskSpec> specs, const std::vector<std::string>& outputs);
  // Asks the scheduler for InfoRequest `what` ("" / "info": scheduler_info, "logs", "report"
  // since `since_ms`; docs/dashboard.md) and waits for its InfoReply. Any user thread; throws
  // TimeoutError, or ConnectionError without a scheduler.
  nlohmann::json info(const std::string& what, std::uint64_t since_ms, std::chrono::milliseconds timeout);
  nlohmann::json info(std::chrono::milliseconds timeout) { return info({}, 0, timeout); }  // scheduler_info's
  // The dashboard link from the scheduler's ClientWelcome; empty: it serves none. Set once by the
  // I/O thread before start() returns, read under mutex_ by any thread.
  std::string dashboard_link();
  void shutdown_cluster(int code);
  void retire_workers(std::vector<std::string> names);  // RetireWorkers; Client::retire_workers waits
  const std::string& address() const { return opt_.address; }
  const FastPaths& fast_paths() const { return opt_.fast_paths; }
  // Called on the I/O thread when the cluster announces shutdown or the scheduler is lost
  // (code 1). The MPI runner uses it to end a client whose user code is still busy.
  void set_end_handler(std::function<void(int code, const std::string& reason)> handler);
  ClientCounters counters();

  // futures.cpp
  const Payload& fetch(FutureState& s, std::optional<std::chrono::milliseconds> timeout);
  std::vector<const Payload*> fetch_all(const std::vector<FutureState*>& states);
  bool wait_all(const std::vector<FutureState*>& states, std::optional<std::chrono::milliseconds> timeout);
  std::optional<std::size_t> wait_any(const std::vector<FutureState*>& states,
                                      std::optional<std::chrono::milliseconds> timeout);
  void cancel(const std::vector<FutureState*>& states);
  FutureStatus status(const FutureState& s);
  // How many of `states` are done, and how many of those failed or were cancelled, under one
  // lock (progress.cpp).
  ProgressCounts count_done(const std::vector<FutureState*>& states);
  std::string error(const FutureState& s);
  void drop_ref(FutureState& s);

 private:
  // connection.cpp
  void post(protocol::ClientToScheduler m);
  // Sends what outgoing_ says is due (all of it if `force`d or closing), in order; any thread.
  // Takes sock_mutex_, then mutex_.
  void flush_outgoing(bool force = false);
  // sock_mutex_ held, after a thread other than the I/O thread used sched_ or early_sock_ (see
  // the hand-over above).
  void rearm_io_poll();
  void io_loop();
  void on(protocol::ClientWelcome& m);
  void on(protocol::Rejected& m);
  void on(protocol::KeyDone& m);
  void on(protocol::KeyErred& m);
  void on(protocol::KeyCancelled& m);
  void on(protocol::KeyLost& m);
  void on(protocol::InfoReply& m);
  void on(protocol::Heartbeat& m);
  void on(protocol::ClusterClosing& m);
  void fail_all_pending(const std::string& why);
  void request_fetch(FutureState& s);  // mutex_ held
  void send_fetches(std::uint64_t now);
  void on_data(protocol::DataReply& reply);
  // The connection to a worker's data server, made on first use (I/O thread only).
  zmq::socket_t& data_conn(const std::string& address);
  bool settled(const FutureState& s) const;  // done and, if finished, data fetchable/fetched
  void wake_waiters();  // after future states changed (any thread, mutex_ not held)

  // pushed_results.cpp
  void on_pushed(protocol::ResultPushed& m, const std::string& from);

  // early_start.cpp
  struct EarlyStart {
    protocol::StartTask message;
    std::string address;
  };
  // mutex_ held: a StartTask for this one-task submit, if it qualifies (may_start_early);
  // marks the spec with its nonce and target.
  std::optional<EarlyStart> early_start_for(protocol::TaskSpec& spec);
  // No lock held: sends it; if it cannot go, unmarks its held SubmitTasks. True if sent.
  bool start_early(const EarlyStart& e);
  // sock_mutex_ held: sends it to the worker at `address`; false if that is not possible now
  // (`fresh` is set if the connection to it was only asked for by this call).
  bool send_early(const protocol::StartTask& m, const std::string& address, bool& fresh);
  // sock_mutex_ held: takes the workers' answers to StartTasks off early_sock_. True if one was
  // a NotStarted: then flush_outgoing(true) is due.
  bool take_early_replies();

  // spin_wait.cpp
  // No lock held: spins until progress_ moves past `seen` or `until`; takes early_sock_'s
  // answers meanwhile. True if something happened.
  bool spin_for_progress(std::uint64_t seen, std::chrono::steady_clock::time_point until);

  ConnectOptions opt_;
  std::shared_ptr<spdlog::logger> log_;
  zmq::context_t ctx_{1};
  zmq::socket_t sched_{ctx_, zmq::socket_type::dealer};  // sock_mutex_
  zmq::socket_t monitor_;  // I/O thread (see the header)
  std::mutex sock_mutex_;
  transport::Wakeup wakeup_;
  std::thread io_;
  // The I/O thread's id, stored by that thread before io_loop: start() is still move-assigning
  // io_ when the loop first asks whether it runs on it (rearm_io_poll), so io_ cannot be read there.
  std::atomic<std::thread::id> io_id_{};

  std::mutex mutex_;
  std::condition_variable cv_;
  // Bumped with every cv_ notification, so a waiter can spin on it instead of sleeping.
  std::atomic<std::uint64_t> progress_{0};
  // result() of one future spins this long before sleeping while results come back quickly.
  transport::SpinPolicy result_spin_{std::chrono::microseconds(200)};
  std::unordered_map<std::string, std::shared_ptr<FutureState>> states_;
  OutgoingQueue outgoing_;
  std::vector<std::shared_ptr<FutureState>> fetch_queue_;
  std::unordered_map<std::uint64_t, nlohmann::json> infos_;
  std::string dashboard_link_;  // ClientWelcome's, set before welcomed_
  std::uint64_t next_request_ = 1;
  bool welcomed_ = false;
  bool closing_ = false;     // close() called
  bool stopped_ = false;     // I/O thread finished
  bool cluster_closing_ = false;
  std::string connection_error_;
  std::function<void(int, const std::string&)> end_handler_;
  // Random, so two clients never share it: workers push small results to this routing id.
  const std::string data_identity_;
  std::uint64_t results_pushed_ = 0;  // results that arrived from a worker before KeyDone
  // Early starts (mutex_): the workers that pushed a result here, asked in turn to start the
  // next task early (EarlyTargets), and the key of the early task not yet back (one at a time:
  // several at once would be started without the scheduler's view of who is busy).
  EarlyTargets early_targets_;
  std::string early_key_;
  std::uint64_t early_starts_ = 0;
  std::uint64_t early_not_started_ = 0;
  std::uint64_t next_nonce_;
  // sock_mutex_. Its own routing id, as a worker's data server accepts one connection per id;
  // early_connected_: the addresses it was connected to, oldest first (bounded, send_early).
  std::unique_ptr<zmq::socket_t> early_sock_;
  std::vector<std::string> early_connected_;
  // Threads spinning for a result (see the hand-over above).
  std::atomic<int> spinners_{0};

  // I/O-thread-only state
  struct DataConn {
    std::unique_ptr<zmq::socket_t> socket;
  };
  std::unordered_map<std::string, DataConn> data_conns_;
  struct DataRequest {
    std::string address;
    std::vector<std::shared_ptr<FutureState>> states;
    std::uint64_t sent_ms;
  };
  std::unordered_map<std::uint64_t, DataRequest> data_requests_;
  std::uint64_t next_data_request_ = 1;
};

}  // namespace dtask::detail

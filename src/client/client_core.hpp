// The client's connection: an I/O thread owns the sockets; user threads wait on future states.
#pragma once

#include <condition_variable>
#include <deque>
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

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  explicit ClientCore(ConnectOptions options);
  ~ClientCore();

  void start();  // connects and waits for the welcome; throws ConnectionError
  void close();

  std::vector<FutureRefPtr> submit(std::vector<protocol::TaskSpec> specs, const std::vector<std::string>& outputs);
  const Payload& fetch(FutureState& s, std::optional<std::chrono::milliseconds> timeout);
  std::vector<const Payload*> fetch_all(const std::vector<FutureState*>& states);
  bool wait_all(const std::vector<FutureState*>& states, std::optional<std::chrono::milliseconds> timeout);
  std::optional<std::size_t> wait_any(const std::vector<FutureState*>& states,
                                      std::optional<std::chrono::milliseconds> timeout);
  void cancel(const std::vector<FutureState*>& states);
  FutureStatus status(const FutureState& s);
  std::string error(const FutureState& s);
  void drop_ref(FutureState& s);
  nlohmann::json info(std::chrono::milliseconds timeout);
  void shutdown_cluster(int code);
  const std::string& address() const { return opt_.address; }
  // How many results reached this client straight from a worker (ResultPushed) before the
  // scheduler's KeyDone: what tests and the latency benchmark check the short path with.
  std::uint64_t results_pushed();
  // How many tasks this client asked a worker to start early (StartTask): the short path of a
  // submit-result loop, two hops instead of three.
  std::uint64_t early_starts();
  // ...and how many of those the worker did not take (NotStarted): the scheduler placed them.
  std::uint64_t early_not_started();
  // Called on the I/O thread when the cluster announces shutdown or the scheduler is lost
  // (code 1). The MPI runner uses it to end a client whose user code is still busy.
  void set_end_handler(std::function<void(int code, const std::string& reason)> handler);

 private:
  void post(protocol::ClientToScheduler m);
  // Sends what is due, in order; any thread. Takes sock_mutex_ then mutex_. Held-back
  // messages (held_, releases) go along with anything else, once kEarlyHoldMs old, or when
  // `force`d.
  void flush_outgoing(bool force = false);
  // sock_mutex_ held: after another thread used sched_, ZMQ_FD may have been reset with a
  // message still waiting, so the I/O thread (polling the bare fd) must look again.
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
  void on_pushed(protocol::ResultPushed& m, const std::string& from);
  // mutex_ held: a StartTask for this one-task submit, if it qualifies (see StartTask).
  std::optional<protocol::StartTask> early_start_for(protocol::TaskSpec& spec);
  // sock_mutex_ held: sends it to the worker it names; false if that is not possible now.
  bool send_early(const protocol::StartTask& m, const std::string& address);
  // sock_mutex_ held: takes the workers' answers to StartTasks off early_sock_ (any thread: a
  // thread waiting for a result spins on this, one thread hand-off sooner than the I/O
  // thread). True if one was a NotStarted: then flush_outgoing(true) is due.
  bool take_early_replies();
  // The connection to a worker's data server, made on first use (I/O thread only).
  zmq::socket_t& data_conn(const std::string& address);
  bool settled(const FutureState& s) const;  // done and, if finished, data fetchable/fetched
  void wake_waiters();  // after future states changed (any thread, mutex_ not held)

  ConnectOptions opt_;
  std::shared_ptr<spdlog::logger> log_;
  zmq::context_t ctx_{1};
  // The scheduler connection. The I/O thread receives on it; small submissions are sent by the
  // submitting thread itself (one hand-off less per round trip), so every use of it holds
  // sock_mutex_, and the I/O thread polls its ZMQ_FD without holding the mutex. Lock order:
  // sock_mutex_ before mutex_.
  zmq::socket_t sched_{ctx_, zmq::socket_type::dealer};
  std::mutex sock_mutex_;
  transport::Wakeup wakeup_;
  std::thread io_;

  std::mutex mutex_;
  std::condition_variable cv_;
  // Bumped with every cv_ notification, so a waiter can spin on it instead of sleeping.
  std::atomic<std::uint64_t> progress_{0};
  // result() of one future spins this long before sleeping while results come back quickly.
  transport::SpinPolicy result_spin_{std::chrono::microseconds(200)};
  std::unordered_map<std::string, std::shared_ptr<FutureState>> states_;
  std::vector<protocol::ClientToScheduler> outgoing_;
  std::vector<std::shared_ptr<FutureState>> fetch_queue_;
  std::unordered_map<std::uint64_t, nlohmann::json> infos_;
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
  // Pushed results not yet reported to the scheduler; they go out with the next message.
  std::vector<protocol::PushReceipt> receipts_;
  // Early starts (guarded by mutex_): the worker that last pushed a result here, which is the
  // one asked to start the next task early, and the key of the early task not yet back (one at
  // a time: several would all land on that one worker instead of being spread by the scheduler).
  protocol::WorkerId early_worker_;
  std::string early_address_;
  std::string early_key_;
  std::uint64_t early_starts_ = 0;
  std::uint64_t early_not_started_ = 0;
  std::uint64_t next_nonce_;
  // The socket StartTasks go out on and their answers come back on (guarded by sock_mutex_,
  // polled by the I/O thread through its bare ZMQ_FD like sched_). Its own routing id, as a
  // worker's data server accepts one connection per id.
  std::unique_ptr<zmq::socket_t> early_sock_;
  std::string early_sock_address_;
  // Threads spinning for a result, which take early_sock_'s answers themselves: the I/O thread
  // then leaves that socket out of its poll rather than wake up for them as well.
  std::atomic<int> spinners_{0};
  // Held back (guarded by mutex_): the SubmitTasks of early-started tasks, each followed by its
  // receipt once the result is here, in that order (the scheduler must place a task before it
  // hears it done). They, and releases of keys, wait up to kEarlyHoldMs from held_since_ms_
  // (0 = nothing held) and then go as one batch.
  std::vector<protocol::ClientToScheduler> held_;
  std::uint64_t held_since_ms_ = 0;

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

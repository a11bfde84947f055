// The user's handle on a cluster: submit, map, gather, wait, as_completed, cancel, delayed/compute.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <dtask/codec.hpp>
#include <dtask/task.hpp>
#include <dtask/types.hpp>

namespace dtask {

class LocalCluster;
namespace slurm {
class Cluster;
}
template <class T>
class Future;
template <class T>
class Delayed;

namespace detail {

class ClientCore;        // src/client: the connection, its I/O thread and the futures' shared state
class FutureRef;         // src/client: one submitted key, shared by every copy of its Future
struct ClientInternals;  // src/client/internal.hpp: what bootstrap, tests and the benchmark see
using FutureRefPtr = std::shared_ptr<FutureRef>;

// Throws std::invalid_argument: `what` was done with an empty (default-constructed or moved
// from) Future or Delayed.
[[noreturn]] void throw_empty(const char* what);

struct DelayedNode;
using DelayedNodePtr = std::shared_ptr<DelayedNode>;

// One argument of a graph node before submission.
struct NodeArg {
  enum class Kind { value, node, future, node_list, future_list } kind = Kind::value;
  Payload value;
  DelayedNodePtr node;
  FutureRefPtr future;
  std::vector<DelayedNodePtr> nodes;
  std::vector<FutureRefPtr> futures;
};

struct DelayedNode {
  std::string key;
  std::string func;
  std::vector<NodeArg> args;
  SubmitOptions options;
};

// The templates' way to a Future's ref and a Delayed's node, which are private: what a user holds
// is a value, not a handle on the client's internals. Throws for an empty one.
struct Access {
  template <class T>
  static const FutureRefPtr& ref(const Future<T>& f, const char* what) {
    if (!f.ref_) throw_empty(what);
    return f.ref_;
  }
  template <class T>
  static const DelayedNodePtr& node(const Delayed<T>& d, const char* what) {
    if (!d.node_) throw_empty(what);
    return d.node_;
  }
  template <class T>
  static Future<T> make_future(FutureRefPtr ref) {
    return Future<T>(std::move(ref));
  }
};

std::string fresh_key(const std::string& func);
std::string name_of_task(const void* fn);  // throws std::invalid_argument for unregistered functions

// Type-erased operations, implemented in src/client.
const std::string& key_of(const FutureRef& ref);
std::vector<FutureRefPtr> submit_graph(ClientCore& core, const std::vector<DelayedNodePtr>& outputs);
const Payload& fetch(const FutureRef& ref, std::optional<std::chrono::milliseconds> timeout);
std::vector<const Payload*> fetch_all(const std::vector<const FutureRef*>& refs);
FutureStatus status_of(const FutureRef& ref);
std::string error_of(const FutureRef& ref);
bool wait_all(const std::vector<const FutureRef*>& refs, std::optional<std::chrono::milliseconds> timeout);
// Blocks until one of refs is done; returns its index, or nullopt on timeout.
std::optional<std::size_t> wait_any(const std::vector<const FutureRef*>& refs,
                                    std::optional<std::chrono::milliseconds> timeout);
void cancel(const std::vector<const FutureRef*>& refs);
// dtask::progress's work (src/client/progress.cpp): waits for every ref, drawing as it goes.
void progress(const std::vector<const FutureRef*>& refs, const ProgressOptions& options);

template <class T>
struct is_future : std::false_type {};
template <class T>
struct is_future<Future<T>> : std::true_type {};
template <class T>
struct is_delayed : std::false_type {};
template <class T>
struct is_delayed<Delayed<T>> : std::true_type {};

template <class T>
struct is_future_vector : std::false_type {};
template <class T, class A>
struct is_future_vector<std::vector<Future<T>, A>> : std::true_type {};
template <class T>
struct is_delayed_vector : std::false_type {};
template <class T, class A>
struct is_delayed_vector<std::vector<Delayed<T>, A>> : std::true_type {};

template <class R>
using result_t = std::conditional_t<std::is_void_v<R>, std::nullptr_t, std::decay_t<R>>;

// Converts one call argument into a NodeArg. P is the task's parameter type: plain values are
// encoded as P so the worker decodes exactly what the function takes.
template <class P, class A>
NodeArg make_arg(A&& a) {
  using D = std::decay_t<A>;
  NodeArg out;
  if constexpr (is_future<D>::value) {
    out.kind = NodeArg::Kind::future;
    out.future = Access::ref(a, "a task argument");
  } else if constexpr (is_delayed<D>::value) {
    out.kind = NodeArg::Kind::node;
    out.node = Access::node(a, "a task argument");
  } else if constexpr (is_future_vector<D>::value) {
    out.kind = NodeArg::Kind::future_list;
    for (const auto& f : a) out.futures.push_back(Access::ref(f, "a task argument"));
  } else if constexpr (is_delayed_vector<D>::value) {
    out.kind = NodeArg::Kind::node_list;
    for (const auto& d : a) out.nodes.push_back(Access::node(d, "a task argument"));
  } else {
    static_assert(std::is_convertible_v<A&&, std::decay_t<P>>,
                  "argument is not convertible to the task's parameter type");
    out.kind = NodeArg::Kind::value;
    out.value = Codec<std::decay_t<P>>::encode(static_cast<std::decay_t<P>>(std::forward<A>(a)));
  }
  return out;
}

template <class... P, class... A, std::size_t... I>
std::vector<NodeArg> make_args_typed(std::index_sequence<I...>, A&&... a) {
  std::vector<NodeArg> out;
  out.reserve(sizeof...(A));
  (out.push_back(make_arg<std::tuple_element_t<I, std::tuple<P...>>>(std::forward<A>(a))), ...);
  return out;
}

template <class R, class... P, class... A>
DelayedNodePtr make_node(const SubmitOptions& opts, R (*fn)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "wrong number of arguments for this task");
  auto node = std::make_shared<DelayedNode>();
  node->func = name_of_task(reinterpret_cast<const void*>(fn));
  node->key = opts.key ? *opts.key : fresh_key(node->func);
  node->options = opts;
  node->args = make_args_typed<P...>(std::index_sequence_for<A...>{}, std::forward<A>(args)...);
  return node;
}

// By-name submission: no parameter types known, so each value is encoded as its own type.
template <class... A>
DelayedNodePtr make_named_node(const SubmitOptions& opts, std::string name, A&&... args) {
  auto node = std::make_shared<DelayedNode>();
  node->func = std::move(name);
  node->key = opts.key ? *opts.key : fresh_key(node->func);
  node->options = opts;
  (node->args.push_back(make_arg<std::decay_t<A>>(std::forward<A>(args))), ...);
  return node;
}

template <class T>
std::vector<const FutureRef*> refs_of(const std::vector<Future<T>>& fs, const char* what) {
  std::vector<const FutureRef*> out;
  out.reserve(fs.size());
  for (const auto& f : fs) out.push_back(Access::ref(f, what).get());
  return out;
}

}  // namespace detail

// A task submitted to the cluster whose result has type T. A default-constructed (or moved
// from) Future is empty: valid() is false and everything else throws std::invalid_argument.
template <class T>
class Future {
 public:
  Future() = default;

  const std::string& key() const { return detail::key_of(ref("Future::key()")); }
  FutureStatus status() const { return detail::status_of(ref("Future::status()")); }
  bool done() const { return status() != FutureStatus::pending; }
  // The value; throws TaskError (task name, key, message) if the task failed.
  T result() const { return Codec<T>::decode(detail::fetch(ref("Future::result()"), std::nullopt)); }
  T result(std::chrono::milliseconds timeout) const {
    return Codec<T>::decode(detail::fetch(ref("Future::result()"), timeout));
  }
  // The failure message, empty unless status() is error.
  std::string error_message() const { return detail::error_of(ref("Future::error_message()")); }
  bool valid() const { return static_cast<bool>(ref_); }

 private:
  friend struct detail::Access;
  explicit Future(detail::FutureRefPtr ref) : ref_(std::move(ref)) {}
  const detail::FutureRef& ref(const char* what) const { return *detail::Access::ref(*this, what); }
  detail::FutureRefPtr ref_;
};

// A lazy task: nothing runs until Client::compute or Client::persist submits the graph.
template <class T>
class Delayed {
 public:
  Delayed() = default;
  explicit Delayed(detail::DelayedNodePtr node) : node_(std::move(node)) {}
  const std::string& key() const { return detail::Access::node(*this, "Delayed::key()")->key; }
  bool valid() const { return static_cast<bool>(node_); }

 private:
  friend struct detail::Access;
  detail::DelayedNodePtr node_;
};

template <class R, class... P, class... A>
Delayed<detail::result_t<R>> delayed(R (*fn)(P...), A&&... args) {
  return Delayed<detail::result_t<R>>(detail::make_node(SubmitOptions{}, fn, std::forward<A>(args)...));
}
template <class R, class... P, class... A>
Delayed<detail::result_t<R>> delayed(const SubmitOptions& opts, R (*fn)(P...), A&&... args) {
  return Delayed<detail::result_t<R>>(detail::make_node(opts, fn, std::forward<A>(args)...));
}

// Yields futures in the order they finish (Dask's as_completed).
template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<Future<T>> futures) : pending_(std::move(futures)) {}
  // The next finished future, or nullopt when all have been returned.
  std::optional<Future<T>> next(std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    if (pending_.empty()) return std::nullopt;
    auto idx = detail::wait_any(detail::refs_of(pending_, "as_completed"), timeout);
    if (!idx) throw TimeoutError("as_completed: no future finished within the timeout");
    Future<T> f = std::move(pending_[*idx]);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(*idx));
    return f;
  }
  std::size_t remaining() const { return pending_.size(); }

  class iterator {
   public:
    explicit iterator(AsCompleted* owner) : owner_(owner) { advance(); }
    const Future<T>& operator*() const { return *current_; }
    iterator& operator++() { advance(); return *this; }
    bool operator!=(std::nullptr_t) const { return current_.has_value(); }
   private:
    void advance() { current_ = owner_->next(); }
    AsCompleted* owner_;
    std::optional<Future<T>> current_;
  };
  iterator begin() { return iterator(this); }
  std::nullptr_t end() { return nullptr; }

 private:
  std::vector<Future<T>> pending_;
};

template <class T>
AsCompleted<T> as_completed(std::vector<Future<T>> futures) {
  return AsCompleted<T>(std::move(futures));
}

class Client {
 public:
  explicit Client(const LocalCluster& cluster);
  explicit Client(const slurm::Cluster& cluster);
  explicit Client(const ConnectOptions& options);
  static Client from_scheduler_file(const std::string& path);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  template <class R, class... P, class... A>
  Future<detail::result_t<R>> submit(R (*fn)(P...), A&&... args) {
    return submit(SubmitOptions{}, fn, std::forward<A>(args)...);
  }
  template <class R, class... P, class... A>
  Future<detail::result_t<R>> submit(const SubmitOptions& opts, R (*fn)(P...), A&&... args) {
    auto node = detail::make_node(opts, fn, std::forward<A>(args)...);
    return detail::Access::make_future<detail::result_t<R>>(detail::submit_graph(core(), {node}).at(0));
  }
  // Submits a task by its registered name (e.g. from a configuration file).
  template <class R, class... A>
  Future<R> submit_named(const SubmitOptions& opts, std::string name, A&&... args) {
    auto node = detail::make_named_node(opts, std::move(name), std::forward<A>(args)...);
    return detail::Access::make_future<R>(detail::submit_graph(core(), {node}).at(0));
  }

  // One task per item, submitted as one batch.
  template <class R, class P, class Range>
  std::vector<Future<detail::result_t<R>>> map(R (*fn)(P), const Range& items, const SubmitOptions& opts = {}) {
    std::vector<detail::DelayedNodePtr> nodes;
    for (const auto& item : items) {
      SubmitOptions o = opts;
      o.key.reset();
      nodes.push_back(detail::make_node(o, fn, item));
    }
    return wrap<detail::result_t<R>>(detail::submit_graph(core(), nodes));
  }
  // Two ranges zipped, like Dask's client.map(add, xs, ys).
  template <class R, class P1, class P2, class Range1, class Range2>
  std::vector<Future<detail::result_t<R>>> map(R (*fn)(P1, P2), const Range1& a, const Range2& b,
                                               const SubmitOptions& opts = {}) {
    std::vector<detail::DelayedNodePtr> nodes;
    auto ia = std::begin(a);
    auto ib = std::begin(b);
    for (; ia != std::end(a) && ib != std::end(b); ++ia, ++ib) {
      SubmitOptions o = opts;
      o.key.reset();
      nodes.push_back(detail::make_node(o, fn, *ia, *ib));
    }
    return wrap<detail::result_t<R>>(detail::submit_graph(core(), nodes));
  }

  // All results, in order; throws the first task's TaskError if any failed.
  template <class T>
  std::vector<T> gather(const std::vector<Future<T>>& futures) {
    auto payloads = detail::fetch_all(detail::refs_of(futures, "Client::gather"));
    std::vector<T> out;
    out.reserve(payloads.size());
    for (const Payload* p : payloads) out.push_back(Codec<T>::decode(*p));
    return out;
  }
  // True when every future is done (finished, failed or cancelled) within the timeout.
  template <class T>
  bool wait(const std::vector<Future<T>>& futures, std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    return detail::wait_all(detail::refs_of(futures, "Client::wait"), timeout);
  }
  template <class T>
  void cancel(const std::vector<Future<T>>& futures) {
    detail::cancel(detail::refs_of(futures, "Client::cancel"));
  }
  template <class T>
  void cancel(const Future<T>& future) {
    detail::cancel({detail::Access::ref(future, "Client::cancel").get()});
  }

  // Submits the whole graph behind `outputs` at once and returns the outputs' futures.
  template <class T>
  std::vector<Future<T>> persist(const std::vector<Delayed<T>>& outputs) {
    std::vector<detail::DelayedNodePtr> nodes;
    nodes.reserve(outputs.size());
    for (const auto& d : outputs) nodes.push_back(detail::Access::node(d, "Client::persist"));
    return wrap<T>(detail::submit_graph(core(), nodes));
  }
  template <class T>
  std::vector<T> compute(const std::vector<Delayed<T>>& outputs) {
    return gather(persist(outputs));
  }
  template <class T>
  T compute(const Delayed<T>& output) {
    return persist(std::vector<Delayed<T>>{output}).at(0).result();
  }
  // The same with options: with `.progress`, draws dtask::progress over the outputs until they
  // are all done, then gathers (throws the first TaskError like the others). The bar counts the
  // outputs, not the tasks behind them.
  template <class T>
  std::vector<T> compute(const std::vector<Delayed<T>>& outputs, const ComputeOptions& options) {
    auto futures = persist(outputs);
    if (options.progress) detail::progress(detail::refs_of(futures, "Client::compute"), options.progress_options);
    return gather(futures);
  }
  template <class T>
  T compute(const Delayed<T>& output, const ComputeOptions& options) {
    return compute(std::vector<Delayed<T>>{output}, options).at(0);
  }

  // Dask's wait_for_workers; false (not an exception) when they did not come in time.
  [[nodiscard]] bool wait_for_workers(std::size_t n, std::chrono::milliseconds timeout);
  SchedulerInfo scheduler_info();
  // Scale down without loss (Dask's retire_workers): the named workers stop taking work, hand
  // every result only they hold to other workers, and leave with exit code 0; futures stay
  // valid and nothing is recomputed. Returns once none of the names is among the scheduler's
  // live workers (unknown names count as gone); false (not an exception) if some are still there
  // at the timeout. A worker's drain is bounded by its own drain timeout (30 s). Retiring every
  // worker leaves nobody to take the results: they go with the workers (recomputed if needed).
  [[nodiscard]] bool retire_workers(const std::vector<std::string>& names,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Ask the whole cluster to shut down; `code` becomes every MPI rank's exit code.
  void shutdown_cluster(int code = 0);
  void close();
  const std::string& scheduler_address() const;
  // The scheduler's dashboard, with its access token (http://HOST:PORT/status?token=...), as the
  // scheduler announced it when this client connected; empty when it serves none
  // (dashboard_address "none"). Like Dask's client.dashboard_link.
  std::string dashboard_link() const;
  // Every worker's recent log lines (Dask's get_worker_logs), by worker name: the last `n` lines
  // of each (info level and above), oldest first. A worker that died or left is still listed
  // with the lines the scheduler kept (alive false, or true once a worker of that name came
  // back). Throws TimeoutError if the scheduler does not answer within 30 s, ConnectionError
  // without a scheduler, std::runtime_error for an answer it cannot read.
  std::map<std::string, WorkerLogs> get_worker_logs(std::size_t n = 1000);

 private:
  friend struct detail::ClientInternals;
  detail::ClientCore& core();  // throws std::logic_error for a moved-from Client
  template <class T>
  static std::vector<Future<T>> wrap(std::vector<detail::FutureRefPtr> refs) {
    std::vector<Future<T>> out;
    out.reserve(refs.size());
    for (auto& r : refs) out.push_back(detail::Access::make_future<T>(std::move(r)));
    return out;
  }
  std::shared_ptr<detail::ClientCore> core_;
};

}  // namespace dtask

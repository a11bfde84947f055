// Futures: the type-erased operations behind Future<T>, and the user threads' waiting side.
//
// Threads and locks: see connection.hpp. Everything here runs on user threads and takes mutex_
// (fetch spins without it first: spin_wait.cpp).
#include <stdexcept>

#include "client/connection.hpp"

namespace dtask::detail {

using namespace protocol;

void throw_empty(const char* what) {
  throw std::invalid_argument(std::string("dtask: ") + what +
                              ": empty Future or Delayed (default-constructed or moved from); use one returned by "
                              "Client::submit, map or persist, or by dtask::delayed");
}

// ---------------------------------------------------------------------------------------------
// FutureRef and the type-erased API behind the templates

FutureRef::FutureRef(std::shared_ptr<ClientCore> core, std::shared_ptr<FutureState> state)
    : core_(std::move(core)), state_(std::move(state)) {}
FutureRef::~FutureRef() {
  if (core_) core_->drop_ref(*state_);
}
const std::string& key_of(const FutureRef& ref) { return ref.key(); }

const Payload& fetch(const FutureRef& ref, std::optional<std::chrono::milliseconds> timeout) {
  return ref.core().fetch(ref.state(), timeout);
}
std::vector<const Payload*> fetch_all(const std::vector<const FutureRef*>& refs) {
  if (refs.empty()) return {};
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(&r->state());
  return refs.front()->core().fetch_all(states);
}
FutureStatus status_of(const FutureRef& ref) { return ref.core().status(ref.state()); }
std::string error_of(const FutureRef& ref) { return ref.core().error(ref.state()); }
bool wait_all(const std::vector<const FutureRef*>& refs, std::optional<std::chrono::milliseconds> timeout) {
  if (refs.empty()) return true;
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(&r->state());
  return refs.front()->core().wait_all(states, timeout);
}
std::optional<std::size_t> wait_any(const std::vector<const FutureRef*>& refs,
                                    std::optional<std::chrono::milliseconds> timeout) {
  if (refs.empty()) return std::nullopt;
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(&r->state());
  return refs.front()->core().wait_any(states, timeout);
}
void cancel(const std::vector<const FutureRef*>& refs) {
  if (refs.empty()) return;
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(&r->state());
  refs.front()->core().cancel(states);
}

// ---------------------------------------------------------------------------------------------
// ClientCore: waiting for futures

void ClientCore::drop_ref(FutureState& s) {
  std::lock_guard lock(mutex_);
  if (s.refs == 0 || --s.refs > 0) return;
  const std::string& key = s.key;  // `s` lives on in the FutureRef being destroyed
  auto it = states_.find(key);
  if (it != states_.end() && it->second.get() == &s) states_.erase(it);
  if (stopped_ || closing_) return;
  // Not urgent, so no wake-up: it rides with the next message or leaves with the held-back
  // ones (kEarlyHoldMs, outgoing.hpp). Waking the I/O thread here cost every result() a second
  // hand-off.
  outgoing_.release(key, transport::now_ms());
}

bool ClientCore::settled(const FutureState& s) const { return s.status != FutureStatus::pending; }

void ClientCore::wake_waiters() {
  progress_.fetch_add(1, std::memory_order_release);
  cv_.notify_all();
}

FutureStatus ClientCore::status(const FutureState& s) {
  std::lock_guard lock(mutex_);
  return s.status;
}

std::string ClientCore::error(const FutureState& s) {
  std::lock_guard lock(mutex_);
  return s.error;
}

namespace {
[[noreturn]] void throw_for(const FutureState& s) {
  if (s.status == FutureStatus::cancelled) throw CancelledError(s.key);
  throw TaskError(s.key, s.error_func, s.error);
}
}  // namespace

void ClientCore::request_fetch(FutureState& s) {
  if (s.fetching || s.data) return;
  auto it = states_.find(s.key);
  if (it == states_.end()) return;
  s.fetching = true;
  s.fetch_error.clear();
  fetch_queue_.push_back(it->second);
  wakeup_.notify();
}

const Payload& ClientCore::fetch(FutureState& s, std::optional<std::chrono::milliseconds> timeout) {
  const bool bounded = timeout.has_value();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout.value_or(std::chrono::milliseconds(0));
  // A short round trip is cheaper spun than slept (spin_wait.cpp); never past the deadline.
  auto spin_until = opt_.fast_paths.spin_wait ? start + result_spin_.budget() : start;
  if (bounded) spin_until = std::min(spin_until, deadline);
  bool waited = false;
  std::unique_lock lock(mutex_);
  while (true) {
    if (s.data) {
      if (waited) result_spin_.record(std::chrono::steady_clock::now() - start);
      return *s.data;
    }
    if (s.status == FutureStatus::error || s.status == FutureStatus::cancelled) throw_for(s);
    if (!s.fetch_error.empty()) throw ConnectionError(s.fetch_error);
    if (s.status == FutureStatus::finished) request_fetch(s);
    waited = true;
    auto now = std::chrono::steady_clock::now();
    if (now < spin_until) {
      const auto seen = progress_.load(std::memory_order_acquire);
      lock.unlock();
      spin_for_progress(seen, spin_until);  // spin_wait.cpp
      lock.lock();
      continue;
    }
    if (bounded) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !s.data && s.status == FutureStatus::pending) {
        throw TimeoutError("future " + s.key + " did not finish within the timeout");
      }
    } else {
      cv_.wait(lock);
    }
  }
}

std::vector<const Payload*> ClientCore::fetch_all(const std::vector<FutureState*>& states) {
  std::unique_lock lock(mutex_);
  // From here on the I/O thread fetches each result as soon as it is done, so this thread only
  // walks the list once (a rescan per wake-up would be quadratic in the number of futures).
  for (FutureState* s : states) {
    s->auto_fetch = true;
    if (s->status == FutureStatus::finished && !s->data) request_fetch(*s);
  }
  std::size_t i = 0;
  while (i < states.size()) {
    FutureState* s = states[i];
    if (s->status == FutureStatus::error || s->status == FutureStatus::cancelled) throw_for(*s);
    if (!s->fetch_error.empty()) throw ConnectionError(s->fetch_error);
    if (s->data) {
      ++i;
      continue;
    }
    if (s->status == FutureStatus::finished && !s->fetching) request_fetch(*s);
    cv_.wait(lock);
  }
  std::vector<const Payload*> out;
  out.reserve(states.size());
  for (FutureState* s : states) out.push_back(&*s->data);
  return out;
}

ProgressCounts ClientCore::count_done(const std::vector<FutureState*>& states) {
  std::lock_guard lock(mutex_);
  ProgressCounts c;
  c.total = states.size();
  for (const FutureState* s : states) {
    if (!settled(*s)) continue;
    ++c.done;
    if (s->status != FutureStatus::finished) ++c.erred;
  }
  return c;
}

bool ClientCore::wait_all(const std::vector<FutureState*>& states, std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mutex_);
  auto pred = [&] {
    for (FutureState* s : states) {
      if (!settled(*s)) return false;
    }
    return true;
  };
  if (timeout) return cv_.wait_for(lock, *timeout, pred);
  cv_.wait(lock, pred);
  return true;
}

std::optional<std::size_t> ClientCore::wait_any(const std::vector<FutureState*>& states,
                                                std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mutex_);
  std::optional<std::size_t> found;
  auto pred = [&] {
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (settled(*states[i])) {
        found = i;
        return true;
      }
    }
    return false;
  };
  if (timeout) {
    cv_.wait_for(lock, *timeout, pred);
  } else {
    cv_.wait(lock, pred);
  }
  return found;
}

void ClientCore::cancel(const std::vector<FutureState*>& states) {
  CancelKeys m;
  {
    std::lock_guard lock(mutex_);
    for (FutureState* s : states) {
      if (s->status == FutureStatus::pending) {
        s->status = FutureStatus::cancelled;
        s->error = "cancelled by the client";
      }
      m.keys.push_back(s->key);
    }
  }
  wake_waiters();
  post(std::move(m));
}

}  // namespace dtask::detail

// Bounded spin-then-block for event-loop hand-offs that usually complete within microseconds.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace dtask::transport {

// Decides whether a thread about to sleep on a hand-off should first spin for a while: only
// when recent waits of this kind ended within the bound. A sleeping thread costs a wake-up
// (tens of µs on a virtual machine); a spin costs a core for at most `limit`. Long waits (a
// slow task, an idle cluster) quickly turn spinning off; they are still measured, so short
// waits turn it back on. Any thread may use one policy.
class SpinPolicy {
 public:
  explicit SpinPolicy(std::chrono::nanoseconds limit) : limit_(limit) {}

  // How long to spin before blocking: the limit, or zero while recent waits were long.
  std::chrono::nanoseconds budget() const {
    return credit_.load(std::memory_order_relaxed) > 0 ? limit_ : std::chrono::nanoseconds(0);
  }
  // How long the wait took, spun or slept, from its start to the event.
  void record(std::chrono::nanoseconds waited) {
    int c = credit_.load(std::memory_order_relaxed);
    int next = waited <= limit_ ? std::min(c + 1, kMaxCredit) : std::max(c - 2, 0);
    credit_.store(next, std::memory_order_relaxed);
  }

 private:
  static constexpr int kMaxCredit = 4;
  std::chrono::nanoseconds limit_;
  std::atomic<int> credit_{0};
};

// Spins until `ready()` or `budget` has passed; true if ready. Yields between checks so a
// thread woken onto this core (often the very one that will make us ready) runs at once.
template <class Ready>
bool spin_until(Ready&& ready, std::chrono::nanoseconds budget) {
  if (budget.count() <= 0) return ready();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (true) {
    if (ready()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return ready();
    ::sched_yield();
  }
}

}  // namespace dtask::transport

// Fast path "spin wait": a thread waiting for one result spins briefly before it sleeps.
//
// Purpose  A sleeping thread costs a wake-up (tens of µs on a virtual machine) when its result
//          comes; a result that comes within ~200 µs is cheaper spun for.
// Inputs   ClientCore::fetch (futures.cpp), for one future, with the time it may spin:
//          result_spin_'s budget (SpinPolicy: 200 µs while recent waits were that short, else 0),
//          never past the caller's deadline; progress_, bumped by wake_waiters.
// Action   spin_for_progress spins (yielding) until progress_ moves or the time is up, without
//          mutex_. Meanwhile it takes early_sock_'s answers itself (take_early_replies, under a
//          try_lock of sock_mutex_): the early-started task's result lands one thread hand-off
//          sooner than through the I/O thread. It counts itself in spinners_ so the I/O thread
//          leaves early_sock_ alone meanwhile, and wakes the I/O thread when it gives up so that
//          thread polls early_sock_ again. A NotStarted taken here sends the held submit at once.
// Caveats  Costs a core for at most the budget per wait; long waits turn it off by themselves
//          (SpinPolicy). gather/wait/wait_any never spin. Off with FastPaths::spin_wait: fetch
//          sleeps on cv_ at once and only the I/O thread reads early_sock_.
#include "client/connection.hpp"

namespace dtask::detail {

bool ClientCore::spin_for_progress(std::uint64_t seen, std::chrono::steady_clock::time_point until) {
  const auto now = std::chrono::steady_clock::now();
  if (now >= until) return false;
  bool not_started = false;
  spinners_.fetch_add(1, std::memory_order_acq_rel);
  bool got = transport::spin_until(
      [&] {
        if (progress_.load(std::memory_order_acquire) != seen) return true;
        // No rearm_io_poll: this touches only early_sock_ and drains it, so nothing is left for
        // the I/O thread to miss.
        std::unique_lock sock(sock_mutex_, std::try_to_lock);
        if (sock.owns_lock()) not_started = take_early_replies() || not_started;
        return progress_.load(std::memory_order_acquire) != seen || not_started;
      },
      until - now);
  spinners_.fetch_sub(1, std::memory_order_acq_rel);
  // The I/O thread may be polling without early_sock_: it must look at it again.
  if (!got) wakeup_.notify();
  if (not_started) flush_outgoing(true);
  return got;
}

}  // namespace dtask::detail

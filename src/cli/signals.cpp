// SIGTERM/SIGINT to an orderly stop: the handler only calls a stop function that is signal-safe.
#include "cli/signals.hpp"

#include <atomic>

namespace dtask::cli {

namespace {
std::atomic<StopFn> g_stop{nullptr};
extern "C" void handle_signal(int sig) {
  if (StopFn f = g_stop.load()) f(128 + sig);
}
}  // namespace

void on_termination(StopFn stop) {
  g_stop = stop;
  struct sigaction sa {};
  sa.sa_handler = handle_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace dtask::cli

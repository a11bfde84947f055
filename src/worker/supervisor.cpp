// The worker's supervisor: the restart policy, exit descriptions, and the fork/wait loop (see supervisor.hpp).
#include "worker/supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <thread>

#include "common/log.hpp"
#include "transport/transport.hpp"

namespace dtask::worker {

RestartDecision decide_restart(const RestartPolicy& policy, const std::vector<std::uint64_t>& deaths_ms,
                               std::uint64_t now_ms) {
  RestartDecision d;
  const auto window = static_cast<std::uint64_t>(policy.window.count());
  for (std::uint64_t t : deaths_ms) {
    if (t <= now_ms && now_ms - t <= window) ++d.deaths_in_window;
  }
  if (d.deaths_in_window > policy.max_deaths) return d;
  d.restart = true;
  if (d.deaths_in_window <= 1) return d;
  auto delay = policy.first_delay;
  for (int i = 2; i < d.deaths_in_window && delay < policy.max_delay; ++i) delay *= 2;
  d.delay = std::min(delay, policy.max_delay);
  return d;
}

ExitVerdict judge_exit(int wait_status, int forwarded_signal) {
  if (WIFEXITED(wait_status)) return {false, WEXITSTATUS(wait_status)};
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return {forwarded_signal == 0, 128 + sig};
  }
  return {false, 1};  // stopped/continued are not reported without WUNTRACED; nothing else exists
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited with code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    std::string s = "killed by signal " + std::to_string(sig);
    if (const char* abbrev = ::sigabbrev_np(sig)) s += std::string(" (SIG") + abbrev + ")";
    if (WCOREDUMP(wait_status)) s += ", core dumped";
    return s;
  }
  return "ended with wait status " + std::to_string(wait_status);
}

namespace {

std::atomic<pid_t> g_child{0};
std::atomic<int> g_forwarded{0};

extern "C" void on_supervisor_signal(int sig) {
  g_forwarded.store(sig);
  if (pid_t c = g_child.load(); c > 0) ::kill(c, sig);
}

// Sleeps up to `d`, waking early if a stop signal arrives; false if one did.
bool sleep_unless_stopped(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (g_forwarded.load() == 0) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::milliseconds(0)) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(20)));
  }
  return false;
}

}  // namespace

int supervise(const SuperviseOptions& options, const Incarnation& incarnation) {
  auto log = log::make("supervisor", options.where.empty() ? options.name : options.where);
  auto board = RunningBoard::make_shared_across_fork(options.board_slots);
  const pid_t self = ::getpid();
  g_forwarded = 0;
  g_child = 0;
  struct sigaction sa {}, old_term {}, old_int {};
  sa.sa_handler = on_supervisor_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGINT, &sa, &old_int);
  sigset_t stops, before;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  auto restore = [&] {
    sigaction(SIGTERM, &old_term, nullptr);
    sigaction(SIGINT, &old_int, nullptr);
  };

  protocol::PreviousExit previous;
  std::vector<std::uint64_t> deaths;
  int result = 0;
  while (true) {
    if (int sig = g_forwarded.load(); sig != 0) {  // asked to stop between incarnations
      result = 128 + sig;
      break;
    }
    board->clear();
    std::fflush(nullptr);
    ::sigprocmask(SIG_BLOCK, &stops, &before);
    const pid_t child = ::fork();
    if (child == 0) {
      // The incarnation: the worker's own handlers replace these once it runs; until then a
      // stop signal ends it the default way (the supervisor forwarded it, so it will not restart).
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != self) ::_exit(1);  // the supervisor died before prctl took effect
      ::sigprocmask(SIG_SETMASK, &before, nullptr);
      int code = 1;
      try {
        code = incarnation(previous, board);
      } catch (const std::exception& e) {
        log->error("{}", e.what());
      } catch (...) {
        log->error("the worker failed with a non-standard exception");
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    if (child < 0) {
      ::sigprocmask(SIG_SETMASK, &before, nullptr);
      log->error("cannot fork a worker process: {}", ::strerror(errno));
      result = 1;
      break;
    }
    g_child = child;
    ::sigprocmask(SIG_SETMASK, &before, nullptr);  // a pending stop signal is forwarded here

    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) {
        status = W_EXITCODE(1, 0);
        break;
      }
    }
    g_child = 0;
    const ExitVerdict verdict = judge_exit(status, g_forwarded.load());
    result = verdict.code;
    if (!verdict.restart) break;

    const std::string reason = describe_exit(status);
    deaths.push_back(transport::now_ms());
    const RestartDecision d = decide_restart(options.policy, deaths, deaths.back());
    if (!d.restart) {
      log->error("worker '{}' died {} times within {} s (last: {}); not restarting it again", options.name,
                 d.deaths_in_window, options.policy.window.count() / 1000, reason);
      break;
    }
    previous.died = true;
    previous.reason = reason;
    previous.running = board->running();
    log->warn("worker '{}' (pid {}) {} while running {} task(s); restarting it{}", options.name, child, reason,
              previous.running.size(),
              d.delay.count() > 0 ? " in " + std::to_string(d.delay.count()) + " ms" : std::string());
    if (!sleep_unless_stopped(d.delay)) {
      result = 128 + g_forwarded.load();
      break;
    }
  }
  restore();
  return result;
}

}  // namespace dtask::worker

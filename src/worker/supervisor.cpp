// The worker's supervisor: the restart policy, exit descriptions, and the fork/wait loop (see supervisor.hpp).
#include "worker/supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

    std::string reason = describe_exit(status);
    // It killed itself for memory (worker_server.cpp's monitor): say so.
    if (auto [process_mib, limit_mib] = board->memory_kill(); limit_mib != 0 && WIFSIGNALED(status)) {
      reason = "killed itself for memory (process memory " + std::to_string(process_mib) +
               " MiB above the terminate threshold of its memory_limit " + std::to_string(limit_mib) + " MiB, " + reason + ")";
    }
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

std::uint64_t staggered_lifetime_ms(std::uint64_t lifetime_ms, std::uint64_t stagger_ms, double u) {
  if (lifetime_ms == 0) return 0;
  const double l = static_cast<double>(lifetime_ms) + (2.0 * std::clamp(u, 0.0, 1.0) - 1.0) * static_cast<double>(stagger_ms);
  return l < 1.0 ? 1 : static_cast<std::uint64_t>(l);
}

int group_exit_code(const std::vector<int>& codes_in_exit_order) {
  for (int c : codes_in_exit_order) {
    if (c != 0) return c;
  }
  return 0;
}

namespace {
// The group's members, for the parent's signal handler (written before the signals are unblocked).
constexpr std::size_t kMaxGroup = 1024;
std::atomic<pid_t> g_members[kMaxGroup];
std::atomic<std::size_t> g_n_members{0};
extern "C" void on_group_signal(int sig) {
  const std::size_t n = g_n_members.load();
  for (std::size_t i = 0; i < n; ++i) {
    if (pid_t c = g_members[i].load(); c > 0) ::kill(c, sig);
  }
}
}  // namespace

int run_group(std::size_t n, const std::function<int(std::size_t)>& member, const std::string& where) {
  auto log = log::make("supervisor", where);
  if (n == 0 || n > kMaxGroup) {
    log->error("cannot run {} workers in one process (1 to {})", n, kMaxGroup);
    return 2;
  }
  const pid_t self = ::getpid();
  struct sigaction sa {}, old_term {}, old_int {};
  sa.sa_handler = on_group_signal;
  sigemptyset(&sa.sa_mask);
  sigset_t stops, before;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  // Blocked while forking: a signal arriving meanwhile is forwarded once every pid is recorded.
  ::sigprocmask(SIG_BLOCK, &stops, &before);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGINT, &sa, &old_int);
  std::fflush(nullptr);
  std::vector<pid_t> pids(n, 0);
  int code = 0;
  std::vector<int> codes;
  for (std::size_t i = 0; i < n; ++i) {
    const pid_t child = ::fork();
    if (child == 0) {
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != self) ::_exit(1);
      ::sigprocmask(SIG_SETMASK, &before, nullptr);
      int c = 1;
      try {
        c = member(i);
      } catch (const std::exception& e) {
        log->error("worker {}: {}", i, e.what());
      }
      // Done: a stop the group forwards now (its others are draining) must not turn this
      // member's code into 143 on its way out (member() restored the default action).
      ::sigprocmask(SIG_BLOCK, &stops, nullptr);
      std::fflush(nullptr);
      ::_exit(c);
    }
    if (child < 0) {
      log->error("cannot fork worker {} of {}: {}", i, n, ::strerror(errno));
      code = 1;
      break;
    }
    pids[i] = child;
    g_members[i] = child;
  }
  g_n_members = n;
  ::sigprocmask(SIG_SETMASK, &before, nullptr);
  if (code != 0) on_group_signal(SIGTERM);  // a fork failed: the others drain and leave
  std::size_t left = static_cast<std::size_t>(std::count_if(pids.begin(), pids.end(), [](pid_t p) { return p > 0; }));
  while (left > 0) {
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, 0);
    if (done < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing left to wait for
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (pids[i] != done) continue;
      g_members[i] = 0;
      pids[i] = 0;
      --left;
      const int c = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
      if (c != 0) log->warn("worker {} of {} {}", i, n, describe_exit(status));
      codes.push_back(c);
    }
  }
  g_n_members = 0;
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
  if (code != 0) codes.insert(codes.begin(), code);
  return group_exit_code(codes);
}

}  // namespace dtask::worker

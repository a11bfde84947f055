// Slurm's commands run with posix_spawn (output captured, bounded in time) and their output parsed.
#include "cluster/slurm_commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace dtask::slurm {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}
std::string join(const std::vector<std::string>& ids, char sep) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : std::string(1, sep)) + id;
  return out;
}
}  // namespace

std::string CommandResult::message() const {
  if (!spawn_error.empty()) return spawn_error;
  if (timed_out) return "timed out";
  std::string e = trim(err);
  if (!e.empty()) return e;
  std::string o = trim(out);
  if (!o.empty()) return o;
  return "exit code " + std::to_string(exit_code);
}

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout) {
  CommandResult r;
  if (argv.empty()) {
    r.spawn_error = "no command";
    return r;
  }
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) { r.spawn_error = std::strerror(errno); return r; }
  if (::pipe2(out, O_CLOEXEC) != 0) { ::close(in[0]); ::close(in[1]); r.spawn_error = std::strerror(errno); return r; }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    r.spawn_error = std::strerror(errno);
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0].c_str(), &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    for (int fd : {in[1], out[0], err[0]}) ::close(fd);
    r.spawn_error = "cannot run " + args[0] + ": " + std::strerror(rc);
    return r;
  }
  // Feed stdin and drain both outputs in one poll loop: a large script and a chatty command
  // must not block each other on full pipes. A command that exits without reading its stdin
  // makes write() raise SIGPIPE: blocked in this thread, and a pending one consumed below.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) { ::close(in_fd); in_fd = -1; }
  int out_fd = out[0], err_fd = err[0];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) { r.timed_out = true; break; }
    pollfd fds[3];
    int n = 0;
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    int pr = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<long>(left.count(), 1000)));
    if (pr < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = ::write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();  // reader gone
        if (written >= input.size()) { ::close(in_fd); in_fd = -1; }
      } else {
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          (fds[i].fd == out_fd ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          ::close(fds[i].fd);
          (fds[i].fd == out_fd ? out_fd : err_fd) = -1;
        }
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd})
    if (fd >= 0) ::close(fd);
  timespec zero{0, 0};
  while (::sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  if (r.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  // Outputs closed: the command is (nearly) done. A child that closed them and lingers is bounded too.
  while (true) {
    pid_t w = ::waitpid(pid, &status, r.timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return r;
    if (w == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        r.timed_out = true;
        ::kill(pid, SIGKILL);
        continue;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (!r.timed_out && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

std::optional<std::string> parse_sbatch_id(const std::string& out) {
  std::string s = trim(out);
  // Some sites print banner lines first: the id is the last line.
  if (auto nl = s.rfind('\n'); nl != std::string::npos) s = trim(s.substr(nl + 1));
  if (auto semi = s.find(';'); semi != std::string::npos) s = s.substr(0, semi);
  if (s.empty() || s.find_first_not_of("0123456789_") != std::string::npos || !std::isdigit(static_cast<unsigned char>(s[0])))
    return std::nullopt;
  return s;
}

std::map<std::string, QueueEntry> parse_squeue(const std::string& out) {
  std::map<std::string, QueueEntry> jobs;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string id, state, reason;
    if (!(words >> id >> state)) continue;
    if (!std::isdigit(static_cast<unsigned char>(id[0]))) continue;  // a header, if -h was ignored
    std::getline(words, reason);
    jobs[id] = {state, trim(reason)};
  }
  return jobs;
}

std::map<std::string, std::string> parse_sacct(const std::string& out) {
  std::map<std::string, std::string> states;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    auto bar = line.find('|');
    if (bar == std::string::npos) continue;
    std::string id = trim(line.substr(0, bar));
    std::string state = line.substr(bar + 1);
    if (auto bar2 = state.find('|'); bar2 != std::string::npos) state = state.substr(0, bar2);
    state = trim(state);
    if (auto sp = state.find(' '); sp != std::string::npos) state = state.substr(0, sp);
    if (id.empty() || state.empty() || id.find('.') != std::string::npos) continue;  // steps: 123.batch
    states[id] = state;
  }
  return states;
}

bool is_final_state(const std::string& state) {
  static const std::set<std::string> kFinal = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                                               "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
                                               "REVOKED", "SPECIAL_EXIT"};
  return kFinal.count(state) > 0;
}

bool is_failure_state(const std::string& state) { return is_final_state(state) && state != "COMPLETED"; }

std::vector<std::string> sbatch_argv(const std::string& sbatch, bool test_only) {
  if (test_only) return {sbatch, "--test-only"};
  return {sbatch, "--parsable"};
}
std::vector<std::string> squeue_argv(const std::string& squeue, const std::vector<std::string>& ids) {
  // -t all: a job that just ended is listed with its final state (for MinJobAge, 300 s by
  // default), so FAILED is known even where accounting (sacct) is off.
  return {squeue, "--jobs=" + join(ids, ','), "-t", "all", "-h", "-o", "%i %T %r"};
}
std::vector<std::string> sacct_argv(const std::string& sacct, const std::vector<std::string>& ids) {
  return {sacct, "-j", join(ids, ','), "-n", "-P", "-X", "-o", "JobID,State"};
}
std::vector<std::string> scancel_argv(const std::string& scancel, const std::vector<std::string>& ids) {
  std::vector<std::string> argv = {scancel};
  argv.insert(argv.end(), ids.begin(), ids.end());
  return argv;
}

Submitted sbatch_submit(const std::string& sbatch, const std::string& script, std::chrono::milliseconds timeout) {
  Submitted s;
  auto r = run_command(sbatch_argv(sbatch, false), script, timeout);
  if (!r.ok()) {
    s.error = r.message();
    return s;
  }
  auto id = parse_sbatch_id(r.out);
  if (!id) s.error = "sbatch printed no job id: " + r.message();
  else s.id = *id;
  return s;
}

std::string sbatch_test_only(const std::string& sbatch, const std::string& script, std::chrono::milliseconds timeout) {
  auto r = run_command(sbatch_argv(sbatch, true), script, timeout);
  return r.ok() ? std::string() : r.message();
}

CancelResult cancel_and_wait(const std::string& scancel, const std::string& squeue, const std::vector<std::string>& ids,
                             std::chrono::milliseconds timeout, std::chrono::milliseconds step,
                             std::chrono::milliseconds command_timeout) {
  CancelResult result;
  if (ids.empty()) {
    result.gone = true;
    return result;
  }
  auto r = run_command(scancel_argv(scancel, ids), "", command_timeout);
  if (!r.ok()) result.scancel_error = r.message();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto q = run_command(squeue_argv(squeue, ids), "", command_timeout);
    bool alive = !q.ok();
    if (q.ok())
      for (const auto& [id, e] : parse_squeue(q.out)) alive = alive || !is_final_state(e.state);
    if (!alive) {
      result.gone = true;
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline) return result;
    std::this_thread::sleep_for(step);
  }
}

}  // namespace dtask::slurm

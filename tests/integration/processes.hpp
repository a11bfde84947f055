// Integration tests' process helpers: start a tool with its output in a log, wait for it, read files, read a scheduler counter.
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dtask/dtask.hpp>

#include "client/internal.hpp"

extern char** environ;

namespace dtask::test {

// One of the scheduler's JSON counters (workers_retired, results_handed_over, ...); 0 if absent.
inline std::uint64_t counter(dtask::Client& c, const char* name) {
  auto j = dtask::detail::ClientInternals::info_json(c, std::chrono::seconds(10));
  return j.at("counters").value(name, std::uint64_t{0});
}

// Starts `args` with stdout and stderr going to `log`.
inline pid_t spawn(std::vector<std::string> args, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE_MESSAGE(rc == 0, "cannot start " << args[0]);
  return pid;
}

// Waits up to `limit` for `pid` to exit; its wait status, or -1 if it is still running.
inline int wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace dtask::test

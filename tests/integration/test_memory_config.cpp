// Memory settings reaching the workers: LocalCluster's limit and thresholds, dtask-worker's --memory-* flags and --local-directory.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <dtask/dtask.hpp>

#include "processes.hpp"
#include "scratch_dir.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint64_t> limits_of(dtask::LocalClusterOptions o, int n) {
  o.n_workers = n;
  o.plugin = TEST_PLUGIN_PATH;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(static_cast<std::size_t>(n), 30s));
  std::vector<std::uint64_t> out;
  for (const auto& w : client.scheduler_info().workers) out.push_back(w.memory_limit);
  return out;
}

struct Run {
  int code = -1;  // exit code; -1: did not exit by itself
  std::string output;
};

// dtask-worker with `args` after the executable, against a scheduler that is never there: every
// case here ends before it would connect.
Run worker(std::vector<std::string> args, const dtask::test::ScratchDir& s) {
  const char* exe = std::getenv("DTASK_WORKER_EXE");
  REQUIRE(exe != nullptr);
  args.insert(args.begin(), {exe, "--scheduler-address", "tcp://127.0.0.1:9", "--plugin", TEST_PLUGIN_PATH,
                             "--no-restart", "--death-timeout", "5s"});
  const std::string log = (s.root / "worker.log").string();
  std::error_code ec;
  fs::remove(log, ec);
  const pid_t pid = dtask::test::spawn(args, log);
  const int status = dtask::test::wait_exit(pid, 60s);
  Run r;
  if (status == -1) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  } else if (WIFEXITED(status)) {
    r.code = WEXITSTATUS(status);
  }
  r.output = dtask::test::read_file(log);
  return r;
}

}  // namespace

TEST_CASE("MemoryConfig.LocalCluster.ProcessesGetTheLimitAndZeroStaysNone") {
  dtask::LocalClusterOptions o;
  o.processes = true;
  // 0 is passed on as 0: dtask-worker's own default ("auto") must not apply
  for (std::uint64_t l : limits_of(o, 2)) CHECK(l == 0);
  o.memory_limit = 256ull << 20;
  o.memory_thresholds.target = 0.5;
  o.memory_thresholds.spill = 0;  // off: accepted by the workers
  dtask::test::ScratchDir s("dtask-memcfg");
  o.local_directory = (s.root / "local").string();
  for (std::uint64_t l : limits_of(o, 2)) CHECK(l == 256ull << 20);
  // --local-directory reached each worker process: each made its spill directories' parent there
  CHECK(fs::is_directory(s.root / "local" / "worker-0" / "dtask-spill"));
  CHECK(fs::is_directory(s.root / "local" / "worker-1" / "dtask-spill"));
}

TEST_CASE("MemoryConfig.LocalCluster.ThreadsGetTheLimit") {
  dtask::LocalClusterOptions o;
  o.memory_limit = 64ull << 20;
  for (std::uint64_t l : limits_of(o, 2)) CHECK(l == 64ull << 20);
}

TEST_CASE("MemoryConfig.LocalCluster.ThresholdsOutOfOrderAreAClearError") {
  for (bool processes : {false, true}) {
    dtask::LocalClusterOptions o;
    o.processes = processes;
    o.plugin = TEST_PLUGIN_PATH;
    o.memory_limit = 256ull << 20;
    o.memory_thresholds.pause = 0.5;  // below target 0.6
    std::string message;
    try {
      dtask::LocalCluster cluster(o);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    CHECK(message == "LocalCluster: memory threshold pause (0.5) is below spill (0.7): they must rise "
                     "target <= spill <= pause <= terminate");
  }
}

TEST_CASE("MemoryConfig.Worker.UnusableLocalDirectoryIsAClearError") {
  dtask::test::ScratchDir s("dtask-memcfg");
  const fs::path file = s.root / "plain-file";
  std::ofstream(file) << "not a directory";
  const std::string dir = (file / "scratch").string();
  Run r = worker({"--memory-limit", "256MiB", "--local-directory", dir}, s);
  CHECK(r.code == 2);
  CHECK(r.output.find("cannot use local directory " + dir + " for spilling: Not a directory") != std::string::npos);
}

TEST_CASE("MemoryConfig.Worker.MalformedMemoryLimitExits2") {
  dtask::test::ScratchDir s("dtask-memcfg");
  Run r = worker({"--memory-limit", "bogus"}, s);
  CHECK(r.code == 2);
  CHECK(r.output.find("cannot read memory limit 'bogus': expected 0, auto, a size like 4GiB or a fraction like 0.5") !=
        std::string::npos);
}

TEST_CASE("MemoryConfig.Worker.ThresholdsOutOfOrderExit2") {
  dtask::test::ScratchDir s("dtask-memcfg");
  Run r = worker({"--memory-pause", "0.5", "--memory-target", "0.9"}, s);
  CHECK(r.code == 2);
  CHECK(r.output.find("below target (0.9)") != std::string::npos);
  CHECK(r.output.find("--memory-spill was not given and defaults to 0.7") != std::string::npos);
  r = worker({"--memory-terminate", "1.5"}, s);
  CHECK(r.code == 2);
  CHECK(r.output.find("cannot read --memory-terminate '1.5'") != std::string::npos);
}

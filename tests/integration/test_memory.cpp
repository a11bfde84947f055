// End to end on LocalCluster: results that outgrow memory_limit spill to local_directory and come back exact; pause; terminate; trimming.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <dtask/dtask.hpp>

#include "eventually.hpp"
#include "worker/worker.hpp"
#include "scratch_dir.hpp"
#include "test_tasks.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;
// Sanitizer builds measure no process memory (worker.hpp: kResidentMemoryIsTheProgramsOwn) and
// their RSS is mostly shadow memory: the cases about process memory do not apply there.
constexpr bool kSanitized = !dtask::worker::kResidentMemoryIsTheProgramsOwn;

// Regular files anywhere under `dir` (the workers' spill directories are subdirectories), or
// only the spill files (`<id>.spill`; a live worker's directory also holds its `.lock`).
std::size_t files_under(const std::string& dir, bool spill_files_only = false) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && (!spill_files_only || it->path().extension() == ".spill")) ++n;
  }
  return n;
}
std::size_t spill_files_under(const std::string& dir) { return files_under(dir, true); }

dtask::SubmitOptions on_worker(const std::string& name) {
  dtask::SubmitOptions o;
  o.workers = {name};
  return o;
}

std::uint64_t spilled_results(const dtask::SchedulerInfo& info) {
  std::uint64_t n = 0;
  for (const auto& w : info.workers) n += w.spilled_count;
  return n;
}

}  // namespace

// The graph: 96 results of 8 MiB (3x a worker's 256 MiB memory_limit), all kept as
// futures, on 2 worker processes, then reduced on the workers. Every sum is exact; each
// worker's peak resident memory stays within 1.3x its limit; spill files exist while the
// results are held and none is left once the cluster is closed.
TEST_CASE("Memory.ResultsThreeTimesTheLimitSpillAndComeBackExact") {
  dtask::test::ScratchDir dir("dtask-test-memory");
  constexpr int kBlocks = 96, kMiBEach = 8;
  constexpr std::uint64_t kLimit = 256 * kMiB;
  {
    dtask::LocalClusterOptions o;
    o.processes = true;
    o.n_workers = 2;
    o.plugin = TEST_PLUGIN_PATH;
    o.memory_limit = kLimit;
    o.local_directory = dir.path;
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    REQUIRE(client.wait_for_workers(2, 30s));
    std::vector<dtask::Future<std::vector<double>>> blocks;
    for (int i = 0; i < kBlocks; ++i) blocks.push_back(client.submit(block, i, kMiBEach));
    client.wait(blocks);
    // Held: most of them are on disk now (written by each worker's I/O thread), and the workers
    // say so in their memory reports.
    CHECK(dtask::test::eventually(client, [&](const dtask::SchedulerInfo& i) {
      return spilled_results(i) > 0 && spill_files_under(dir.path) > 0;
    }));
    auto info = client.scheduler_info();
    for (const auto& w : info.workers) {
      CHECK(w.memory_limit == kLimit);
      CHECK(w.memory_held <= kLimit);
    }
    std::vector<dtask::Future<double>> sums;
    for (auto& b : blocks) sums.push_back(client.submit(sum_doubles, b));
    auto got = client.gather(sums);
    for (int i = 0; i < kBlocks; ++i) CHECK(got[static_cast<std::size_t>(i)] == block_sum(i, kMiBEach));
    // Read back again, through a client's fetch of a spilled block.
    CHECK(blocks[3].result() == block(3, kMiBEach));
    for (const char* name : {"0", "1"}) {
      if (kSanitized) break;
      const long long peak_kib = client.submit(on_worker(name), peak_rss_kib, 0).result(30s);
      INFO("worker " << name << " peak RSS " << peak_kib / 1024 << " MiB, limit " << kLimit / kMiB << " MiB");
      CHECK(static_cast<std::uint64_t>(peak_kib) * 1024 <= kLimit * 13 / 10);
    }
    blocks.clear();
    sums.clear();  // the scheduler keeps a result while a held future's task depends on it
    // Released: their files go too.
    CHECK(dtask::test::eventually(client, [&](const dtask::SchedulerInfo& i) {
      return spilled_results(i) == 0 && spill_files_under(dir.path) == 0;
    }));
  }
  CHECK(files_under(dir.path) == 0);
}

// Threads-mode LocalCluster measures no process memory (its workers share one), so it spills by
// the bytes each worker holds alone; results are exact and the files go at close().
TEST_CASE("Memory.ThreadWorkersSpillByHeldBytes") {
  dtask::test::ScratchDir dir("dtask-test-memory");
  {
    dtask::LocalClusterOptions o;
    o.n_workers = 2;
    o.memory_limit = 64 * kMiB;
    o.local_directory = dir.path;
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    REQUIRE(client.wait_for_workers(2, 30s));
    std::vector<dtask::Future<std::vector<double>>> blocks;
    for (int i = 0; i < 32; ++i) blocks.push_back(client.submit(block, i, 4));
    client.wait(blocks);
    CHECK(dtask::test::eventually(client, [&](const dtask::SchedulerInfo& i) {
      return spilled_results(i) > 0 && spill_files_under(dir.path) > 0;
    }));
    std::vector<dtask::Future<double>> sums;
    for (auto& b : blocks) sums.push_back(client.submit(sum_doubles, b));
    auto got = client.gather(sums);
    for (int i = 0; i < 32; ++i) CHECK(got[static_cast<std::size_t>(i)] == block_sum(i, 4));
  }
  CHECK(files_under(dir.path) == 0);
}

// A task that holds 215 MiB itself (not a result) puts its worker (limit 256 MiB) above the
// pause threshold (80 %): the worker reports it is paused and starts nothing placed on it until
// the memory is freed; then it resumes and runs it.
TEST_CASE("Memory.APausedWorkerStartsNothingUntilMemoryFalls" * doctest::skip(kSanitized)) {
  dtask::test::ScratchDir dir("dtask-test-memory");
  const std::string flag = dir.path + "/let-go";
  dtask::LocalClusterOptions o;
  o.processes = true;
  o.n_workers = 1;
  o.threads_per_worker = 2;
  o.plugin = TEST_PLUGIN_PATH;
  o.memory_limit = 256 * kMiB;
  o.local_directory = dir.path;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(1, 30s));
  auto hog = client.submit(hold_memory, 215LL, flag);
  REQUIRE(dtask::test::eventually(client, [](const dtask::SchedulerInfo& i) {
    return i.workers.size() == 1 && i.workers[0].paused;
  }));
  auto small = client.submit(inc, 1);
  // Paused: a free thread, a ready task, and still it does not start.
  std::this_thread::sleep_for(1500ms);
  CHECK_FALSE(small.done());
  auto info = client.scheduler_info();
  CHECK(info.worker_pauses >= 1);
  REQUIRE(info.workers.size() == 1);
  CHECK(info.workers[0].paused);
  CHECK(info.workers[0].memory_process >= 215 * kMiB);
  std::ofstream(flag) << "go\n";
  CHECK(hog.result(60s) == 215);
  CHECK(small.result(60s) == 2);
  CHECK(dtask::test::eventually(client, [](const dtask::SchedulerInfo& i) {
    return i.workers.size() == 1 && !i.workers[0].paused;
  }));
}

// A task that allocates past its worker's limit (95 %: terminate) gets its worker process killed
// and restarted; it is retried elsewhere, and after allowed_failures deaths it fails as a
// KilledWorker. Results held elsewhere still read as computed, and the cluster still works.
TEST_CASE("Memory.ATaskAllocatingPastTheLimitIsTerminatedAndFailsAfterItsAllowedFailures" * doctest::skip(kSanitized)) {
  dtask::test::ScratchDir dir("dtask-test-memory");
  dtask::LocalClusterOptions o;
  o.processes = true;
  o.n_workers = 2;
  o.plugin = TEST_PLUGIN_PATH;
  o.memory_limit = 128 * kMiB;
  o.local_directory = dir.path;
  o.allowed_failures = 2;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(2, 30s));
  std::vector<dtask::Future<int>> held;
  for (int i = 0; i < 20; ++i) held.push_back(client.submit(inc, i));
  client.wait(held);
  auto hog = client.submit(allocate_and_hold, 200LL, 60);
  try {
    hog.result(120s);
    FAIL("a task past the memory limit returned a value");
  } catch (const dtask::TaskError& e) {
    INFO(e.message());
    CHECK(e.message().find("KilledWorker") != std::string::npos);
  }
  auto values = client.gather(held);
  for (int i = 0; i < 20; ++i) CHECK(values[static_cast<std::size_t>(i)] == i + 1);
  CHECK(client.submit(inc, 41).result(60s) == 42);
}

// Freed results go back to the OS at once, in the worker process (no nanny needed): after
// releasing 160 MiB of results the worker's resident memory is back near where it started.
TEST_CASE("Memory.FreedResultsGoBackToTheOS" * doctest::skip(kSanitized)) {
  dtask::LocalClusterOptions o;
  o.processes = true;
  o.n_workers = 1;
  o.plugin = TEST_PLUGIN_PATH;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  REQUIRE(client.wait_for_workers(1, 30s));
  const long long before_kib = client.submit(rss_kib, 0).result(30s);
  std::vector<dtask::Future<std::vector<double>>> blocks;
  for (int i = 0; i < 20; ++i) blocks.push_back(client.submit(block, i, 8));
  client.wait(blocks);
  const long long held_kib = client.submit(rss_kib, 1).result(30s);
  CHECK(held_kib >= before_kib + 150 * 1024);
  blocks.clear();
  bool back = false;
  long long now_kib = 0;
  for (int i = 0; i < 200 && !back; ++i) {
    std::this_thread::sleep_for(50ms);
    now_kib = client.submit(rss_kib, 2 + i).result(30s);
    back = now_kib <= before_kib + 32 * 1024;
  }
  INFO("RSS before " << before_kib / 1024 << " MiB, holding " << held_kib / 1024 << " MiB, after release "
                     << now_kib / 1024 << " MiB");
  CHECK(back);
}

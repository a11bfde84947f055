// A batch job whose results outgrow memory (issue 15): blocks kept as futures spill to local_directory and are reduced exactly.
//
//   srun dtask-run [--memory-limit auto|SIZE] [--local-directory DIR] libspill_tasks.so [BLOCKS] [MIB]
//
// BLOCKS results of MIB MiB each (default 96 x 8) are computed and all kept, then each is summed on
// the workers. It prints what it saw and "spill ok" when every sum is exact and every worker's peak
// resident memory stayed within 1.3x its memory_limit; otherwise it says what went wrong and returns 1.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <dtask/dtask.hpp>

namespace {
std::size_t doubles_in(int mib) { return static_cast<std::size_t>(mib) * (1 << 20) / sizeof(double); }
}  // namespace

// Values are small integers: every sum is exact in double.
std::vector<double> block(int i, int mib) {
  std::vector<double> v(doubles_in(mib));
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>((static_cast<std::size_t>(i) + k) % 7);
  return v;
}
double sum_block(std::vector<double> v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
// The worker process's peak resident memory (VmHWM), in KiB.
long long peak_rss_kib(int) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}
DTASK_TASKS(block, sum_block, peak_rss_kib);

int spill_main(dtask::Client& client, int argc, char** argv) {
  const int blocks = argc > 1 ? std::atoi(argv[1]) : 96;
  const int mib = argc > 2 ? std::atoi(argv[2]) : 8;
  if (blocks < 1 || mib < 1) {
    std::fprintf(stderr, "usage: spill [BLOCKS >= 1] [MIB >= 1]\n");
    return 2;
  }
  auto info = client.scheduler_info();
  std::printf("spill: %d blocks of %d MiB (%d MiB) on %zu workers\n", blocks, mib, blocks * mib, info.workers.size());
  for (const auto& w : info.workers) {
    std::printf("spill: worker %s on %s: memory_limit %llu MiB\n", w.name.c_str(), w.host.c_str(),
                static_cast<unsigned long long>(w.memory_limit >> 20));
  }
  std::vector<dtask::Future<std::vector<double>>> held;
  for (int i = 0; i < blocks; ++i) held.push_back(client.submit(block, i, mib));
  client.wait(held);
  std::uint64_t on_disk = 0;
  for (const auto& w : client.scheduler_info().workers) on_disk += w.spilled_count;
  std::printf("spill: %llu results on disk while all %d are held\n", static_cast<unsigned long long>(on_disk), blocks);
  std::vector<dtask::Future<double>> sums;
  for (auto& f : held) sums.push_back(client.submit(sum_block, f));
  auto got = client.gather(sums);
  int wrong = 0;
  for (int i = 0; i < blocks; ++i) {
    double want = 0;
    for (std::size_t k = 0; k < doubles_in(mib); ++k) want += static_cast<double>((static_cast<std::size_t>(i) + k) % 7);
    wrong += got[static_cast<std::size_t>(i)] == want ? 0 : 1;
  }
  std::printf("spill: %d of %d sums exact\n", blocks - wrong, blocks);
  bool within = true;
  for (const auto& w : client.scheduler_info().workers) {
    dtask::SubmitOptions on;
    on.workers = {w.name};
    const long long peak = client.submit(on, peak_rss_kib, 0).result();
    const double ratio = w.memory_limit ? static_cast<double>(peak) * 1024 / static_cast<double>(w.memory_limit) : 0;
    std::printf("spill: worker %s peak RSS %lld MiB = %.2fx its limit\n", w.name.c_str(), peak / 1024, ratio);
    if (w.memory_limit && ratio > 1.3) within = false;
  }
  if (wrong != 0 || !within) {
    std::printf("spill FAILED: %d wrong sums, peak RSS %s\n", wrong, within ? "within 1.3x" : "above 1.3x a limit");
    return 1;
  }
  std::printf("spill ok\n");
  return 0;
}
DTASK_MAIN(spill_main);

// The progress bar's test program (tests/progress/run.sh): 60 short tasks, one of which throws, watched by dtask::progress.
//
//   progress_demo [--interval-ms N] [--compute]
// Without --compute: Client::map, then dtask::progress(futures). With it: the same tasks as
// delayed ones through client.compute(outputs, {.progress = true}). Either way it checks that
// exactly task 13 failed and exits 0 (1 otherwise); the bar or lines go to stdout.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dtask/dtask.hpp>

namespace {
constexpr int kTasks = 60;
constexpr int kFailing = 13;
}  // namespace

int nap(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (x == kFailing) throw std::runtime_error("unlucky " + std::to_string(x));
  return x;
}
DTASK_TASKS(nap);

int main(int argc, char** argv) {
  dtask::ProgressOptions progress;
  bool compute = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc) {
      progress.interval = std::chrono::milliseconds(std::atol(argv[++i]));
    } else if (std::strcmp(argv[i], "--compute") == 0) {
      compute = true;
    } else {
      std::fprintf(stderr, "usage: progress_demo [--interval-ms N] [--compute]\n");
      return 2;
    }
  }
  try {
    dtask::LocalClusterOptions o;
    o.n_workers = 2;
    o.log_level = "error";  // the failing task's warning would land in the captured bar
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    std::vector<int> xs(kTasks);
    std::iota(xs.begin(), xs.end(), 0);
    if (compute) {
      std::vector<dtask::Delayed<int>> outputs;
      for (int x : xs) outputs.push_back(dtask::delayed(nap, x));
      try {
        client.compute(outputs, dtask::ComputeOptions{.progress = true, .progress_options = progress});
      } catch (const dtask::TaskError& e) {
        if (e.message() == "unlucky " + std::to_string(kFailing)) return 0;
        std::fprintf(stderr, "progress_demo: unexpected failure: %s\n", e.what());
        return 1;
      }
      std::fprintf(stderr, "progress_demo: compute did not report the failing task\n");
      return 1;
    }
    auto futures = client.map(nap, xs);
    dtask::progress(futures, progress);
    int erred = 0, wrong = 0;
    for (int i = 0; i < kTasks; ++i) {
      const auto& f = futures[static_cast<std::size_t>(i)];
      if (f.status() == dtask::FutureStatus::error) {
        erred += 1;
        wrong += i != kFailing;
      } else {
        wrong += f.status() != dtask::FutureStatus::finished || f.result() != i;
      }
    }
    if (erred != 1 || wrong != 0) {
      std::fprintf(stderr, "progress_demo: %d erred, %d wrong\n", erred, wrong);
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "progress_demo: %s\n", e.what());
    return 1;
  }
}

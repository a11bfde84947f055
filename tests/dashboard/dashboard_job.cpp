// A job to watch (tests/dashboard/run_job.sh): a LocalCluster busy with slow tasks, its dashboard link in a file.
//
//   dashboard_job LINK_FILE STOP_FILE REPORT_FILE
// Serves its dashboard on 127.0.0.1:0, writes the link to LINK_FILE, runs 600 slow_inc tasks of
// 20 ms on 2 workers (about 6 s) and one that fails, waits for STOP_FILE to exist (at most 120 s),
// then closes the cluster, which writes REPORT_FILE. Prints "sum N" (the expected value is known
// to the script) and exits 0.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <dtask/dtask.hpp>

#include "test_tasks.hpp"

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: dashboard_job LINK_FILE STOP_FILE REPORT_FILE\n");
    return 2;
  }
  dtask::LocalClusterOptions o;
  o.n_workers = 2;
  o.plugin = TEST_PLUGIN_PATH;
  o.dashboard_address = "127.0.0.1:0";
  o.report = argv[3];
  long long sum = 0;
  {
    dtask::LocalCluster cluster(o);
    dtask::Client client(cluster);
    if (!client.wait_for_workers(2, 30s)) {
      std::fprintf(stderr, "workers did not come\n");
      return 1;
    }
    {
      std::ofstream f(std::string(argv[1]) + ".tmp");
      f << cluster.dashboard_link() << "\n";
    }
    std::filesystem::rename(std::string(argv[1]) + ".tmp", argv[1]);
    std::vector<int> xs(600);
    for (int i = 0; i < 600; ++i) xs[static_cast<std::size_t>(i)] = i;
    std::vector<int> ms(600, 20);
    auto futures = client.map(slow_inc, xs, ms);
    auto bad = client.submit(fail_if_negative, -3);
    for (int v : client.gather(futures)) sum += v;
    client.wait(std::vector{bad});
    for (int i = 0; i < 1200 && !std::filesystem::exists(argv[2]); ++i) std::this_thread::sleep_for(100ms);
    client.close();
    cluster.close();
  }
  std::printf("sum %lld\n", sum);
  return 0;
}

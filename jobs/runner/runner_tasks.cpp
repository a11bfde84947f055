// The seed's batch-runner example (dask_slurm_runner_example.py) as a dtask plugin.
#include <cstdio>

#include <dtask/dtask.hpp>

int inc(int x) { return x + 1; }
DTASK_TASKS(inc);

int runner_main(dtask::Client& client, int, char**) {
  // dtask-run has already waited for every worker; say where things are, like the seed does.
  auto info = client.scheduler_info();
  std::printf("scheduler address: %s\n", client.scheduler_address().c_str());
  // The seed prints client.dashboard_link: the URL carries the dashboard's access token.
  std::printf("dashboard: %s\n", client.dashboard_link().empty() ? "none" : client.dashboard_link().c_str());
  std::printf("workers: %zu\n", info.workers.size());
  int a = client.submit(inc, 10).result();
  dtask::SubmitOptions on_rank2;
  on_rank2.workers = {"2"};  // worker names are MPI ranks
  int b = client.submit(on_rank2, inc, 20).result();
  if (a != 11 || b != 21) {
    std::printf("unexpected results: %d %d\n", a, b);
    return 1;
  }
  std::printf("inc(10) = %d, inc(20) on worker 2 = %d\n", a, b);
  std::printf("dtask runner is working!\n");
  return 0;
}
DTASK_MAIN(runner_main);

// A client outside the MPI job (dask-mpi style): joins via the scheduler file, works, ends the job.
#include <cstdio>

#include <dtask/dtask.hpp>

int inc(int);
int dec(int);
int add(int, int);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: external_client SCHEDULER_FILE [exit-code]\n");
    return 2;
  }
  auto client = dtask::Client::from_scheduler_file(argv[1]);
  if (!client.wait_for_workers(1, std::chrono::seconds(30))) return 1;
  int total = 0;
  for (int i = 0; i < 50; ++i) total += client.submit(add, client.submit(inc, i), client.submit(dec, i)).result();
  std::printf("external client: sum=%d workers=%zu\n", total, client.scheduler_info().workers.size());
  client.shutdown_cluster(argc > 2 ? std::atoi(argv[2]) : 0);
  return total == 2450 ? 0 : 1;
}

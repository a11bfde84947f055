// The runner embedded in a user's own executable (like dask_mpi.initialize()): tasks linked in.
#include <cstdio>
#include <string>

#include <dtask/dtask.hpp>
#include <dtask/mpi.hpp>

int square(int x) { return x * x; }
DTASK_TASKS(square);

int main(int argc, char** argv) {
  dtask::mpi::RunOptions options;
  options.wait_timeout = std::chrono::seconds(30);
  int want = argc > 1 ? std::stoi(argv[1]) : 0;
  return dtask::mpi::run(argc, argv, options, [want](dtask::Client& client) {
    std::vector<int> xs;
    for (int i = 0; i < 100; ++i) xs.push_back(i);
    long total = 0;
    for (int v : client.gather(client.map(square, xs))) total += v;
    std::printf("embedded: sum of squares = %ld\n", total);
    return total == 328350 ? want : 1;
  });
}

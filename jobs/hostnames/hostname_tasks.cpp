// The seed's dask_mpi_example.py: 100 tasks that return their host's name, counted per host.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <dtask/dtask.hpp>

std::string get_hostname(int) {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}
// The seed's dask_slurm_example.py `test()`: no argument, the host's name.
std::string host_name() { return get_hostname(0); }
DTASK_TASKS(get_hostname, host_name);

int hostnames_main(dtask::Client& client, int argc, char** argv) {
  int n = argc > 1 ? std::stoi(argv[1]) : 100;
  std::vector<int> xs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) xs[static_cast<std::size_t>(i)] = i;
  std::map<std::string, int> per_host;
  for (const auto& h : client.gather(client.map(get_hostname, xs))) ++per_host[h];
  for (const auto& [host, count] : per_host) std::printf("%s: %d tasks\n", host.c_str(), count);
  return 0;
}
DTASK_MAIN(hostnames_main);

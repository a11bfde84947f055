// The seed's first example on a laptop: LocalCluster of 2 workers, tasks from libchains_tasks.so.
#include <cstdio>
#include <string>

#include <dtask/dtask.hpp>

int run_chains(dtask::Client& client, int argc, char** argv);

int main(int argc, char** argv) {
  std::string plugin = argc > 1 ? argv[1] : "libchains_tasks.so";
  try {
    dtask::LocalClusterOptions options;
    options.n_workers = 2;
    options.plugin = plugin;
    dtask::LocalCluster cluster(options);
    dtask::Client client(cluster);
    return run_chains(client, argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chains: %s\n", e.what());
    return 1;
  }
}

// The seed's first example as a plugin: inc, dec, add, plus a client entry point for dtask-run.
#include <cstdio>
#include <vector>

#include <dtask/dtask.hpp>

int inc(int x) { return x + 1; }
int dec(int x) { return x - 1; }
int add(int x, int y) { return x + y; }
DTASK_TASKS(inc, dec, add);

// 256 chains x = inc(i), y = dec(x), z = add(x, y) in one graph; every z must be 2i + 1.
int run_chains(dtask::Client& client, int, char**) {
  std::vector<dtask::Delayed<int>> zs;
  for (int i = 0; i < 256; ++i) {
    auto x = dtask::delayed(inc, i);
    auto y = dtask::delayed(dec, x);
    zs.push_back(dtask::delayed(add, x, y));
  }
  std::vector<int> result = client.compute(zs);
  int wrong = 0;
  for (int i = 0; i < 256; ++i) wrong += result[static_cast<std::size_t>(i)] != 2 * i + 1;
  std::printf("256 chains:");
  for (int i = 0; i < 256; ++i) std::printf(" %d", result[static_cast<std::size_t>(i)]);
  std::printf("\n%s\n", wrong == 0 ? "all 256 results are 2i+1" : "WRONG RESULTS");
  return wrong == 0 ? 0 : 1;
}
DTASK_MAIN(run_chains);

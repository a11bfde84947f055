// The benchmark suite's task plugin: the same task bodies as tests/bench/dask_bench.py, so both
// runtimes do the same (almost no) work per task and the figures measure the runtime itself.
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#define DTASK_PLUGIN_NAME "bench_tasks"
#include <dtask/client.hpp>
#include <dtask/task.hpp>

#include "bench_tasks.hpp"

// W1 chains, W3 latency, W4 tree.
long long inc(long long x) { return x + 1; }
long long dec(long long x) { return x - 1; }
long long add(long long x, long long y) { return x + y; }
// W2: a no-op task; its result is nil (Dask's None).
void noop(long long) {}
// W5 merge: leaves and the one task that takes all of them.
long long ident(long long x) { return x; }
long long sum_all(std::vector<long long> xs) { return std::accumulate(xs.begin(), xs.end(), 0LL); }
// W5 all-to-all: producer i returns one value per consumer; consumer j takes every producer's
// whole output (`all-to-all`) or one `take` per producer (`all-to-all-split`).
std::vector<long long> produce(long long i, long long k) {
  std::vector<long long> out(static_cast<std::size_t>(k));
  for (long long j = 0; j < k; ++j) out[static_cast<std::size_t>(j)] = i * k + j;
  return out;
}
long long consume(long long j, std::vector<std::vector<long long>> parts) {
  long long s = 0;
  for (const auto& p : parts) s += p.at(static_cast<std::size_t>(j));
  return s;
}
long long take(std::vector<long long> part, long long j) { return part.at(static_cast<std::size_t>(j)); }
// W6: a bulk result made on one worker and measured on another. A cheap deterministic pattern
// (not random: the producer is not timed, but it should not take seconds either).
std::vector<std::uint8_t> make_bytes(long long n) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 131u + (i >> 12));
  return v;
}
long long len(std::vector<std::uint8_t> v) { return static_cast<long long>(v.size()); }
// The consumer that reads the bytes where they landed (as Dask hands a NumPy array over its
// received frame): the transfer itself, without a decode copy on the consumer.
long long len_view(std::span<const std::uint8_t> v) { return static_cast<long long>(v.size()); }

DTASK_TASKS(inc, dec, add, noop, ident, sum_all, produce, consume, take, make_bytes, len, len_view);

// W7: what `mpirun -n 4 dtask-run libbench_tasks.so` runs on the client rank: one task.
int bench_w7_main(dtask::Client& client, int, char**) {
  return client.submit(inc, 41LL).result() == 42 ? 0 : 1;
}
DTASK_MAIN(bench_w7_main);

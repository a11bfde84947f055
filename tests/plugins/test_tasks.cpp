// The task plugin the tests run: small arithmetic, failures, bulk data, sleeps and placement probes.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#define DTASK_PLUGIN_NAME "test_tasks"
#include <dtask/task.hpp>
#include <dtask/worker_context.hpp>

#include "test_tasks.hpp"

int inc(int x) { return x + 1; }
int dec(int x) { return x - 1; }
int add(int x, int y) { return x + y; }
int noop(int x) { return x; }
long long add64(long long x, long long y) { return x + y; }
long long sum_list(std::vector<long long> xs) { return std::accumulate(xs.begin(), xs.end(), 0LL); }
int fail_if_negative(int x) {
  if (x < 0) throw std::runtime_error("negative input " + std::to_string(x));
  return x;
}
// Fails until it has been tried `times` times in this process (for retries).
int flaky(int times) {
  static std::atomic<int> calls{0};
  if (++calls < times) throw std::runtime_error("flaky failure " + std::to_string(calls.load()));
  return calls.load();
}
int slow_inc(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x + 1;
}
std::string worker_name(int) { return dtask::get_worker_name(); }
std::string hostname(int) {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}
long long pid(int) { return static_cast<long long>(getpid()); }
// A deterministic pattern so a corrupted transfer cannot pass.
std::vector<std::uint8_t> make_bytes(long long n) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  return v;
}
// Checks the pattern and returns a checksum that includes the worker it ran on.
std::string check_bytes(std::vector<std::uint8_t> v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<std::uint8_t>((i * 2654435761u) >> 13)) {
      throw std::runtime_error("corrupted at byte " + std::to_string(i));
    }
  }
  return dtask::get_worker_name() + ":" + std::to_string(v.size());
}
std::vector<double> linspace(int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i * 0.5;
  return v;
}
double sum_doubles(std::vector<double> v) { return std::accumulate(v.begin(), v.end(), 0.0); }
// The same two, reading their argument in place (zero-copy views).
std::string check_bytes_view(std::span<const std::uint8_t> v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<std::uint8_t>((i * 2654435761u) >> 13)) {
      throw std::runtime_error("corrupted at byte " + std::to_string(i));
    }
  }
  return dtask::get_worker_name() + ":" + std::to_string(v.size());
}
double sum_doubles_view(std::span<const double> v) { return std::accumulate(v.begin(), v.end(), 0.0); }
std::string concat(std::string a, std::string b) { return a + b; }
void nothing(int) {}
// Whether a fresh malloc of `bytes` in this worker process is advised for transparent huge pages
// (the "hg" flag on its mapping in /proc/self/smaps): what common/hugepages.hpp arranges.
bool malloc_hugepage_advised(long long bytes) {
  auto* p = static_cast<char*>(std::malloc(static_cast<std::size_t>(bytes)));
  if (p == nullptr) throw std::runtime_error("malloc failed");
  std::memset(p, 1, static_cast<std::size_t>(bytes));
  auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false, advised = false, found = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's header line
      inside = addr >= lo && addr < hi;
      if (inside) found = true;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      advised = line.find(" hg") != std::string::npos;
    }
  }
  std::free(p);
  if (!found) throw std::runtime_error("the allocation is in no mapping of /proc/self/smaps");
  return advised;
}

// Crashing tasks (tests/integration/test_crashes.cpp, tests/mpi): they kill the worker process
// that runs them. The counter file at `path` counts the attempts across processes; the default
// SIGSEGV action is restored first so a sanitizer's handler cannot turn the crash into an exit.
namespace {
int bump_counter(const std::string& path) {
  int count = 0;
  if (std::ifstream in(path); in) in >> count;
  std::ofstream(path, std::ios::trunc) << count + 1 << "\n";
  return count;
}
[[noreturn]] void segfault() {
  ::signal(SIGSEGV, SIG_DFL);
  ::raise(SIGSEGV);
  std::abort();
}
}  // namespace
// Raises SIGSEGV on its first `n` attempts (counted in `path`), then returns n.
int crash_until(std::string path, int n) {
  if (bump_counter(path) < n) segfault();
  return n;
}
// abort()s on its first `n` attempts (counted in `path`), then returns n. (Named so it does not
// sort before "add": LocalCluster.Errors.UnknownTaskNameIsClear reads the list of names.)
int sigabrt_until(std::string path, int n) {
  if (bump_counter(path) < n) std::abort();
  return n;
}
int always_crash(int) { segfault(); }

// Memory tasks. Values are small integers, so every sum is exact in double.
std::vector<double> block(int i, int mib) {
  const std::size_t n = static_cast<std::size_t>(mib) * (1 << 20) / sizeof(double);
  std::vector<double> v(n);
  for (std::size_t k = 0; k < n; ++k) v[k] = static_cast<double>((static_cast<std::size_t>(i) + k) % 7);
  return v;
}
double block_sum(int i, int mib) {
  const std::size_t n = static_cast<std::size_t>(mib) * (1 << 20) / sizeof(double);
  double s = 0;
  for (std::size_t k = 0; k < n; ++k) s += static_cast<double>((static_cast<std::size_t>(i) + k) % 7);
  return s;
}
namespace {
long long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  const std::string prefix = std::string(field) + ":";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  }
  throw std::runtime_error(prefix + " not in /proc/self/status");
}
}  // namespace
long long peak_rss_kib(int) { return status_kib("VmHWM"); }
long long rss_kib(int) { return status_kib("VmRSS"); }
namespace {
// `mib` MiB, every page written, so it is resident.
std::vector<char> touched(long long mib) {
  std::vector<char> mem(static_cast<std::size_t>(mib) << 20);
  for (std::size_t k = 0; k < mem.size(); k += 4096) mem[k] = 1;
  return mem;
}
}  // namespace
long long hold_memory(long long mib, std::string flag_path) {
  auto mem = touched(mib);
  for (int i = 0; i < 12000 && ::access(flag_path.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return static_cast<long long>(mem.size() >> 20);
}
long long allocate_and_hold(long long mib, int seconds) {
  auto mem = touched(mib);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return static_cast<long long>(mem.size() >> 20);
}

#define DTASK_TEST_DEFINE_ECHO(name, T)                                                       \
  std::vector<T> echo_##name(std::vector<T> v) { return v; }                               \
  std::vector<T> view_##name(std::span<const T> v) { return std::vector<T>(v.begin(), v.end()); }
DTASK_TEST_VALUE_TASKS(DTASK_TEST_DEFINE_ECHO)
std::string echo_string(std::string s) { return s; }
std::vector<std::string> echo_strings(std::vector<std::string> v) { return v; }
std::vector<std::vector<double>> echo_nested(std::vector<std::vector<double>> v) { return v; }
std::map<std::string, std::vector<long long>> echo_map(std::map<std::string, std::vector<long long>> m) { return m; }

DTASK_TASKS(inc, dec, add, noop, add64, sum_list, fail_if_negative, flaky, slow_inc, worker_name, hostname, pid,
            make_bytes, check_bytes, check_bytes_view, linspace, sum_doubles, sum_doubles_view, concat, nothing,
            malloc_hugepage_advised, echo_i8, view_i8, echo_u8, view_u8, echo_i16, view_i16, echo_u16, view_u16,
            echo_i32, view_i32, echo_u32, view_u32, echo_i64, view_i64, echo_u64, view_u64, echo_f32, view_f32,
            echo_f64, view_f64, echo_string, echo_strings, echo_nested, echo_map, crash_until, sigabrt_until,
            always_crash, block, block_sum, peak_rss_kib, rss_kib, hold_memory, allocate_and_hold);

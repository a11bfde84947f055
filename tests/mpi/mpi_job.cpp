// The job the mpirun/Slurm tests launch: one plugin, one DTASK_MAIN, a scenario per first argument.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <zmq.h>

#include <dtask/dtask.hpp>

int inc(int x) { return x + 1; }
int dec(int x) { return x - 1; }
int add(int x, int y) { return x + y; }
int slow_inc(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x + 1;
}
std::string where(int) {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return std::string(buf) + "/" + dtask::get_worker_name();
}
// Tasks that kill the worker process running them (the "crashes" scenario): SIGSEGV on the
// first n attempts, counted in the file at `path`, then n; or on every attempt.
[[noreturn]] void segfault() {
  ::signal(SIGSEGV, SIG_DFL);
  ::raise(SIGSEGV);
  std::abort();
}
int crash_until(std::string path, int n) {
  int count = 0;
  if (std::ifstream in(path); in) in >> count;
  std::ofstream(path, std::ios::trunc) << count + 1 << "\n";
  if (count < n) segfault();
  return n;
}
int always_crash(int) { segfault(); }
std::string echo(std::string s) { return s; }
DTASK_TASKS(inc, dec, add, slow_inc, where, crash_until, always_crash, echo);

namespace {

int chains(dtask::Client& c) {
  std::vector<dtask::Delayed<int>> zs;
  for (int i = 0; i < 256; ++i) {
    auto x = dtask::delayed(inc, i);
    auto y = dtask::delayed(dec, x);
    zs.push_back(dtask::delayed(add, x, y));
  }
  auto r = c.compute(zs);
  for (int i = 0; i < 256; ++i) {
    if (r[static_cast<std::size_t>(i)] != 2 * i + 1) return 1;
  }
  std::printf("chains ok on %zu workers\n", c.scheduler_info().workers.size());
  return 0;
}

// Kills worker rank 2's process mid-graph; every result must still come back right.
int kill_worker(dtask::Client& c) {
  std::vector<int> xs(120);
  for (int i = 0; i < 120; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto fs = c.map(slow_inc, xs, std::vector<int>(120, 25));
  std::vector<dtask::Future<int>> deps;
  for (auto& f : fs) deps.push_back(c.submit(add, f, 1000));  // dependents that need the lost results
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  long victim = 0;
  for (const auto& w : c.scheduler_info().workers) {
    if (w.name == "2") victim = w.pid;
  }
  if (victim <= 0) throw std::runtime_error("worker 2 not found");
  ::kill(static_cast<pid_t>(victim), SIGKILL);
  auto out = c.gather(deps);
  for (int i = 0; i < 120; ++i) {
    if (out[static_cast<std::size_t>(i)] != i + 1001) throw std::runtime_error("wrong result after worker loss");
  }
  std::printf("all 120 results correct after killing worker pid %ld\n", victim);
  return 0;
}

// A stranger without the job's keys connects to the scheduler port and tries to register and
// submit; nothing it sends may have any effect.
int stranger(dtask::Client& c) {
  auto before = c.scheduler_info();
  void* ctx = zmq_ctx_new();
  std::vector<void*> socks;
  for (int variant = 0; variant < 2; ++variant) {
    void* s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (variant == 1) {  // CURVE with the right server key but its own client keys
      char pub[41], sec[41], spub[41], ssec[41];
      zmq_curve_keypair(pub, sec);
      zmq_curve_keypair(spub, ssec);
      zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, spub, 40);
      zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    zmq_connect(s, c.scheduler_address().c_str());
    socks.push_back(s);
  }
  // Hand-made envelopes: a worker registration and raw junk.
  const unsigned char reg[] = {0x94, 0xa5, 'd', 't', 'a', 's', 'k', 0x01, 0xa1, 'W', 0x91, 0x92, 0x00, 0x91, 0x01};
  for (void* s : socks) {
    zmq_send(s, reg, sizeof reg, ZMQ_DONTWAIT);
    zmq_send(s, "junk", 4, ZMQ_DONTWAIT);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  char buf[64];
  int got = 0;
  for (void* s : socks) {
    if (zmq_recv(s, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) ++got;
    zmq_close(s);
  }
  zmq_ctx_term(ctx);
  auto after = c.scheduler_info();
  if (got != 0) throw std::runtime_error("a stranger got an answer from the scheduler");
  if (after.workers.size() != before.workers.size()) throw std::runtime_error("a stranger registered as a worker");
  if (c.submit(inc, 1).result() != 2) throw std::runtime_error("cluster broken after stranger");
  std::printf("strangers got nothing: %zu workers before and after\n", after.workers.size());
  return 0;
}

// Tasks that crash their worker process under mpirun: each worker rank's role process restarts
// its worker, which registers again under its rank; a task that crashes twice then succeeds
// returns its value, one that always crashes fails as KilledWorker naming the signal, its
// dependent fails, everything else is exact and every worker is back at the end.
int crashes(dtask::Client& c, const std::string& dir) {
  const std::size_t n_workers = c.scheduler_info().workers.size();
  auto twice = c.submit(crash_until, dir + "/segv", 2);
  auto doomed = c.submit(always_crash, 1);
  auto dependent = c.submit(inc, doomed);
  std::vector<int> xs(300);
  for (int i = 0; i < 300; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto others = c.map(slow_inc, xs, std::vector<int>(300, 2));
  if (twice.result(std::chrono::seconds(60)) != 2) throw std::runtime_error("crash_until returned a wrong value");
  std::string message;
  try {
    doomed.result(std::chrono::seconds(60));
    throw std::runtime_error("always_crash returned a value");
  } catch (const dtask::TaskError& e) {
    message = e.what();
  }
  if (message.find("KilledWorker") == std::string::npos || message.find("SIGSEGV") == std::string::npos) {
    throw std::runtime_error("always_crash failed with an unexpected message: " + message);
  }
  bool dependent_failed = false;
  try {
    dependent.result(std::chrono::seconds(30));
  } catch (const dtask::TaskError&) {
    dependent_failed = true;
  }
  if (!dependent_failed) throw std::runtime_error("the dependent of a KilledWorker task did not fail");
  auto out = c.gather(others);
  for (int i = 0; i < 300; ++i) {
    if (out[static_cast<std::size_t>(i)] != i + 1) throw std::runtime_error("wrong result next to crashing tasks");
  }
  if (!c.wait_for_workers(n_workers, std::chrono::seconds(20))) throw std::runtime_error("a worker did not come back");
  std::printf("crashes ok: crash_until=2, always_crash KilledWorker with SIGSEGV, 300 others exact, %zu workers back\n",
              c.scheduler_info().workers.size());
  return 0;
}

// Worker rank 2 gets SIGTERM (from tests/mpi/run.sh, once "results ready" shows): it hands its
// results over and leaves, the job goes on. Each result names the worker that computed it, so a
// result recomputed after the leave would name another one.
int drain(dtask::Client& c) {
  std::vector<int> xs(120);
  for (int i = 0; i < 120; ++i) xs[static_cast<std::size_t>(i)] = i;
  auto fs = c.map(where, xs);
  auto by = c.gather(fs);
  long on_2 = 0;
  for (const auto& w : by) on_2 += w.size() > 2 && w.compare(w.size() - 2, 2, "/2") == 0;
  std::printf("results ready: %ld of 120 on worker 2\n", on_2);
  std::fflush(stdout);
  bool gone = false;
  for (int i = 0; i < 3000 && !gone; ++i) {
    gone = true;
    for (const auto& w : c.scheduler_info().workers) gone = gone && w.name != "2";
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!gone) throw std::runtime_error("worker 2 did not leave");
  std::vector<dtask::Future<std::string>> again;
  for (auto& f : fs) again.push_back(c.submit(echo, f));
  if (c.gather(again) != by) throw std::runtime_error("a result was recomputed or lost after worker 2 left");
  if (c.gather(c.map(inc, xs)).back() != 120) throw std::runtime_error("wrong result after worker 2 left");
  std::printf("all 120 results kept after worker 2 left (%ld were there)\n", on_2);
  return 0;
}

int hostnames(dtask::Client& c, int n) {
  std::vector<int> xs(static_cast<std::size_t>(n), 0);
  std::map<std::string, int> per_host;
  for (auto& w : c.gather(c.map(where, xs))) per_host[w.substr(0, w.find('/'))]++;
  for (auto& [h, k] : per_host) std::printf("%s: %d tasks\n", h.c_str(), k);
  return 0;
}

// Each worker's memory_limit as the scheduler has it, by name: "worker 2: memory_limit 268435456".
int memory_limits(dtask::Client& c) {
  std::map<std::string, std::uint64_t> by_name;
  for (const auto& w : c.scheduler_info().workers) by_name[w.name] = w.memory_limit;
  for (const auto& [name, limit] : by_name) std::printf("worker %s: memory_limit %llu\n", name.c_str(),
                                                         static_cast<unsigned long long>(limit));
  return 0;
}

}  // namespace

int job_main(dtask::Client& c, int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "chains";
  if (mode == "chains") return chains(c);
  if (mode == "exit") return std::stoi(argv[2]);
  if (mode == "throw") throw std::runtime_error("deliberate failure in the client code");
  if (mode == "kill-worker") return kill_worker(c);
  if (mode == "drain") return drain(c);
  if (mode == "kill-client") {
    std::fflush(nullptr);
    ::raise(SIGKILL);
  }
  if (mode == "sleep") {
    std::printf("sleeping\n");
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(std::stoi(argv[2])));
    return 0;
  }
  if (mode == "stranger") return stranger(c);
  if (mode == "crashes") return crashes(c, argv[2]);
  if (mode == "memory-limits") return memory_limits(c);
  if (mode == "hostnames") return hostnames(c, argc > 2 ? std::stoi(argv[2]) : 100);
  throw std::runtime_error("unknown scenario " + mode);
}
DTASK_MAIN(job_main);

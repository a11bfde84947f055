// The dtask side of the benchmark suite (W1-W11); tests/bench/run.sh runs it next to
// dask_bench.py and merges both into one table. See docs/performance.md.
//
//   dtask_bench --workloads W1,...,W11,FP [--workers 2] [--small] [--json out.json] [--insecure]
//               [--fast-paths SPEC]
//
// --fast-paths SPEC (FastPaths::parse: all, none, -early_start,...) switches the latency
// shortcuts for every case (scheduler, workers and client alike; default: DTASK_FAST_PATHS).
// FP is what each is worth: W3's round trip and W2's map with all, none, and each one off.
//
// Each case gets a fresh cluster: a `dtask-scheduler` process and N `dtask-worker` processes
// (one executor thread each), like Dask's LocalCluster(processes=True, threads_per_worker=1).
// The scheduler being its own process is what makes its memory measurable: peak RSS is its
// VmHWM (reset through /proc/PID/clear_refs when a case starts) and its CPU time comes from
// /proc/PID/stat. W8 is the exception: an in-process SchedulerServer and simulated workers.
// GCC 12 at -O3 reports a false -Wmaybe-uninitialized inside std::variant's move constructor
// when protocol messages are pushed into a vector (the same family as GCC PR 105329/107919).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <dtask/dtask.hpp>

#include "bench_tasks.hpp"
#include "client/internal.hpp"
#include "common/hugepages.hpp"
#include "common/log.hpp"
#include "common/scheduler_file.hpp"
#include "protocol/wire.hpp"
#include "scheduler/scheduler_server.hpp"
#include "scheduler/scheduler_state.hpp"
#include "transport/transport.hpp"
#include "worker/spill_files.hpp"

#ifndef BENCH_PLUGIN_PATH
#define BENCH_PLUGIN_PATH ""
#endif
#ifndef DTASK_SCHEDULER_EXE_PATH
#define DTASK_SCHEDULER_EXE_PATH ""
#endif
#ifndef DTASK_WORKER_EXE_PATH
#define DTASK_WORKER_EXE_PATH ""
#endif
#ifndef DTASK_RUN_EXE_PATH
#define DTASK_RUN_EXE_PATH ""
#endif
#ifndef MPI_HELLO_EXE_PATH
#define MPI_HELLO_EXE_PATH ""
#endif

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace proto = dtask::protocol;

namespace {

// ---------------------------------------------------------------------------------------------
// options and paths

struct Options {
  std::vector<std::string> workloads;
  int workers = 2;
  bool small = false;
  bool secure = true;
  std::string json_path;
  double case_timeout_s = 900;
  std::uint64_t min_free_mb = 4096;  // abort a case (not the machine) when MemAvailable gets this low
  std::string plugin, scheduler_exe, worker_exe, dtask_run_exe, mpi_hello_exe;
  std::vector<long long> w2_sizes, w9_sizes;  // --w2-sizes / --w9-sizes override the defaults
  std::vector<long long> w8_counts;          // --w8-workers overrides 8,100,1000
  std::string w9_variants = "state,graph";   // --w9-variants: which W9 cases run
  std::string sched_log_level = "error";     // --sched-log-level: the spawned dtask-scheduler's
  dtask::FastPaths fast_paths;               // --fast-paths (else DTASK_FAST_PATHS), for every case
};
Options g_opt;
// The fast paths of the case being run: g_opt.fast_paths, except while FP runs its series. Every
// cluster a case starts takes them (scheduler, workers, client), and every record names them.
dtask::FastPaths g_fast_paths;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double p) {  // nearest rank, like dask_bench.py
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto k = static_cast<long long>(std::ceil(p * static_cast<double>(v.size()) / 100.0)) - 1;
  k = std::clamp<long long>(k, 0, static_cast<long long>(v.size()) - 1);
  return v[static_cast<std::size_t>(k)];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// ---------------------------------------------------------------------------------------------
// /proc readers

long proc_status_kb(pid_t pid, const char* field) {  // VmRSS, VmHWM, ... in kB; -1 if unknown
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  std::size_t n = std::strlen(field);
  while (std::getline(f, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  }
  return -1;
}

void reset_peak_rss(pid_t pid) {  // Linux >= 4.0: "5" resets VmHWM to the current RSS
  std::ofstream f("/proc/" + std::to_string(pid) + "/clear_refs");
  f << "5";
}

double proc_cpu_s(pid_t pid) {  // utime + stime of a whole process
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream in(s.substr(rp + 2));
  std::string tok;
  double ut = 0, st = 0;
  for (int field = 3; in >> tok; ++field) {
    if (field == 14) ut = std::atof(tok.c_str());
    if (field == 15) {
      st = std::atof(tok.c_str());
      break;
    }
  }
  return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double thread_cpu_s(pthread_t t) {
  clockid_t clk;
  if (pthread_getcpuclockid(t, &clk) != 0) return 0;
  timespec ts{};
  clock_gettime(clk, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

long mem_available_mb() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  long v = 0;
  std::string unit;
  while (f >> key >> v >> unit) {
    if (key == "MemAvailable:") return v / 1024;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// records: one human line each, and the whole list as JSON (rewritten after every record, so a
// case killed later loses nothing that was already measured)

std::mutex g_out_mutex;
json g_records = json::array();

std::string fmt(double v, int prec) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

double load1() {
  double l[1] = {0};
  return ::getloadavg(l, 1) == 1 ? std::round(l[0] * 100) / 100 : -1;
}

json record(const std::string& w, const std::string& variant, long long n) {
  json r = json{{"workload", w},      {"variant", variant}, {"n", n},          {"config", g_opt.secure ? "dtask" : "dtask-insecure"},
              {"wall_s", nullptr},  {"tasks_per_s", nullptr}, {"p50_us", nullptr}, {"p99_us", nullptr},
              {"mb_per_s", nullptr}, {"ok", true},        {"error", nullptr}};
  r["fast_paths"] = g_fast_paths.to_string();
  // Anything else running on the machine (compiles, other tests) skews the figures; this shows it.
  r["load1_at_start"] = load1();
  return r;
}

void emit(const json& r) {
  std::lock_guard lock(g_out_mutex);
  std::string line = "dtask " + r["workload"].get<std::string>() + " " + r["variant"].get<std::string>() +
                     " n=" + std::to_string(r["n"].get<long long>());
  if (r["config"] != "dtask") line += " config=" + r["config"].get<std::string>();
  if (r.value("fast_paths", "all") != "all") line += " fast_paths=" + r["fast_paths"].get<std::string>();
  auto num = [&](const char* k) { return r.contains(k) && r[k].is_number(); };
  if (num("wall_s")) line += " wall=" + fmt(r["wall_s"].get<double>(), 3) + "s";
  if (num("tasks_per_s")) line += " tasks/s=" + fmt(r["tasks_per_s"].get<double>(), 0);
  if (num("p50_us")) line += " p50=" + fmt(r["p50_us"].get<double>(), 0) + "us p99=" + fmt(r["p99_us"].get<double>(), 0) + "us";
  if (num("mb_per_s")) line += " MB/s=" + fmt(r["mb_per_s"].get<double>(), 1);
  static const char* extras[] = {"tasks", "edges", "submit_s", "build_s", "start_s", "stop_s", "pct_of_raw",
                                 "register_s", "rel_to_8", "sched_peak_rss_mb", "sched_bytes_per_task",
                                 "sched_held_bytes_per_task", "sched_cpu_s", "workers_cpu_s", "client_cpu_s",
                                 "sched_cpu_us_per_task", "proc_peak_rss_mb", "vs_mpi_hello"};
  for (const char* k : extras) {
    if (!r.contains(k) || r[k].is_null()) continue;
    const auto& v = r[k];
    std::string key = k;
    bool secs = key.size() > 2 && key.compare(key.size() - 2, 2, "_s") == 0;
    if (v.is_number_integer()) line += " " + key + "=" + std::to_string(v.get<long long>());
    else if (v.is_number()) line += " " + key + "=" + fmt(v.get<double>(), secs ? 3 : (v.get<double>() < 10 ? 2 : 0)) + (secs ? "s" : "");
    else line += " " + key + "=" + v.dump();
  }
  if (r.value("skipped", false)) line += " skipped (" + r.value("note", std::string()) + ")";
  if (!r["ok"].get<bool>()) line += " ok=false (" + (r["error"].is_string() ? r["error"].get<std::string>() : "?") + ")";
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  g_records.push_back(r);
  if (!g_opt.json_path.empty()) {
    // Replaced whole (a reader never sees half a file), except something that is not a regular
    // file: renaming over --json /dev/null would turn the machine's /dev/null into a plain file.
    std::error_code ec;
    auto st = std::filesystem::status(g_opt.json_path, ec);
    if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st)) {
      std::ofstream f(g_opt.json_path);
      f << g_records.dump(1) << "\n";
    } else {
      std::ofstream f(g_opt.json_path + ".tmp");
      f << g_records.dump(1) << "\n";
      f.close();
      std::rename((g_opt.json_path + ".tmp").c_str(), g_opt.json_path.c_str());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// child processes (scheduler, workers, mpirun): killed with us, whatever kills us

std::mutex g_children_mutex;
std::vector<pid_t> g_children;
volatile sig_atomic_t g_child_list_busy = 0;
pid_t g_child_array[4096];
volatile int g_child_count = 0;

void track_child(pid_t pid) {
  std::lock_guard lock(g_children_mutex);
  g_children.push_back(pid);
  g_child_list_busy = 1;
  g_child_count = 0;
  for (std::size_t i = 0; i < g_children.size() && i < 4096; ++i) g_child_array[i] = g_children[i];
  g_child_count = static_cast<int>(std::min<std::size_t>(g_children.size(), 4096));
  g_child_list_busy = 0;
}
void untrack_child(pid_t pid) {
  std::lock_guard lock(g_children_mutex);
  std::erase(g_children, pid);
  g_child_list_busy = 1;
  g_child_count = 0;
  for (std::size_t i = 0; i < g_children.size() && i < 4096; ++i) g_child_array[i] = g_children[i];
  g_child_count = static_cast<int>(std::min<std::size_t>(g_children.size(), 4096));
  g_child_list_busy = 0;
}
void kill_all_children() {  // async-signal-safe
  for (int i = 0; i < g_child_count; ++i) ::kill(g_child_array[i], SIGKILL);
}

pid_t spawn(const std::vector<std::string>& args, bool quiet_stdout = true, bool own_group = false) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (own_group) ::setpgid(0, 0);
    if (quiet_stdout) {
      int fd = ::open("/dev/null", O_WRONLY);
      if (fd >= 0) ::dup2(fd, 1);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  track_child(pid);
  return pid;
}

// Waits up to `timeout` for a child; SIGKILLs it after that. Returns its wait status.
int reap(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  int status = 0;
  while (Clock::now() < deadline) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0) {
      untrack_child(pid);
      return status;
    }
    std::this_thread::sleep_for(2ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  untrack_child(pid);
  return -1;
}

// ---------------------------------------------------------------------------------------------
// the watchdog: a case over its time or a machine short of memory ends this run, not the machine

std::mutex g_case_mutex;
json g_case_record;                  // the failure record to write if the current case dies
Clock::time_point g_case_deadline = Clock::time_point::max();
std::atomic<bool> g_in_case{false};
std::atomic<pid_t> g_sched_pid{0};  // the current case's scheduler process, for the failure note
std::atomic<const char*> g_phase{nullptr};  // what the current case was doing, for the failure note

void die_with_case(const std::string& why, int code) {
  {
    std::lock_guard lock(g_case_mutex);
    if (g_in_case) {
      g_case_record["ok"] = false;
      std::string note = why;
      if (pid_t sp = g_sched_pid.load(); sp > 0) {
        note += "; scheduler RSS then " + std::to_string(proc_status_kb(sp, "VmRSS") / 1024) + " MB";
      }
      note += ", this process " + std::to_string(proc_status_kb(::getpid(), "VmRSS") / 1024) + " MB";
      if (const char* ph = g_phase.load()) note += std::string(", while ") + ph;
      g_case_record["error"] = note;
      emit(g_case_record);
    }
  }
  std::fprintf(stderr, "dtask_bench: %s\n", why.c_str());
  kill_all_children();
  std::fflush(nullptr);
  ::_exit(code);
}

void watchdog() {
  while (true) {
    std::this_thread::sleep_for(100ms);
    Clock::time_point deadline;
    {
      std::lock_guard lock(g_case_mutex);
      deadline = g_case_deadline;
    }
    if (g_in_case && Clock::now() > deadline) {
      die_with_case("timeout: the case exceeded " + fmt(g_opt.case_timeout_s, 0) + " s", 4);
    }
    long avail = mem_available_mb();
    if (avail >= 0 && avail < static_cast<long>(g_opt.min_free_mb)) {
      die_with_case("out of memory: MemAvailable fell to " + std::to_string(avail) + " MB (limit " +
                        std::to_string(g_opt.min_free_mb) + " MB); the case was stopped",
                    5);
    }
  }
}

// Marks the start/end of one case: the record the watchdog writes if it has to kill us.
struct CaseGuard {
  CaseGuard(const json& failure_record, double timeout_s) {
    std::lock_guard lock(g_case_mutex);
    g_case_record = failure_record;
    g_case_deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));
    g_in_case = true;
  }
  ~CaseGuard() {
    std::lock_guard lock(g_case_mutex);
    g_in_case = false;
    g_phase = nullptr;
    g_case_deadline = Clock::time_point::max();
  }
};

extern "C" void on_signal(int sig) {
  kill_all_children();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// ---------------------------------------------------------------------------------------------
// a cluster of processes: `dtask-scheduler` + N `dtask-worker`, client in this process

// Extra arguments for every dtask-worker a case spawns (W10 sets --memory-limit).
std::vector<std::string> g_worker_args;
// Extra arguments for the dtask-scheduler (W11 sets --dashboard-address), and whether a headless
// browser watches the dashboard while the case runs (W11).
std::vector<std::string> g_scheduler_args;
bool g_browser = false;

class SpawnedCluster {
 public:
  // timeouts: the client's; W9 raises them because one huge graph stalls both ends for a while.
  SpawnedCluster(int n_workers, bool secure, std::optional<std::chrono::milliseconds> scheduler_timeout = {}) {
    try {
      start(n_workers, secure, scheduler_timeout);
    } catch (...) {
      close();
      throw;
    }
  }
  ~SpawnedCluster() { close(); }

  dtask::Client& client() { return *client_; }
  pid_t scheduler_pid() const { return sched_; }
  std::string scheduler_file() const { return dir_ + "/scheduler.json"; }
  const std::vector<pid_t>& worker_pids() const { return workers_; }

  void close() {
    if (closed_) return;
    closed_ = true;
    auto t0 = Clock::now();
    if (client_) {
      try {
        client_->shutdown_cluster(0);
      } catch (...) {
      }
      client_->close();
      client_.reset();
    }
    if (browser_ > 0) {
      ::kill(-browser_, SIGTERM);  // chromium and its helper processes (its own group)
      reap(browser_, 10s);
      browser_ = -1;
    }
    if (sched_ > 0) ::kill(sched_, SIGTERM);  // no-op if it already left after the shutdown
    for (pid_t w : workers_) reap(w, 10s);
    if (sched_ > 0) reap(sched_, 10s);
    g_sched_pid = 0;
    stop_s = seconds_since(t0);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  double start_s = 0, stop_s = 0;

 private:
  void start(int n_workers, bool secure, std::optional<std::chrono::milliseconds> scheduler_timeout) {
    auto t0 = Clock::now();
    char tmpl[] = "/tmp/dtask-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::string file = dir_ + "/scheduler.json";
    // "--fast-paths=SPEC" in one argument: a list that starts with '-' would read as an option.
    const std::string fast_paths = "--fast-paths=" + g_fast_paths.to_string();
    std::vector<std::string> sargs = {g_opt.scheduler_exe, "--scheduler-file", file, "--log-level",
                                      g_opt.sched_log_level, fast_paths};
    if (!secure) sargs.push_back("--insecure");
    sargs.insert(sargs.end(), g_scheduler_args.begin(), g_scheduler_args.end());
    sched_ = spawn(sargs);
    while (!std::filesystem::exists(file)) {
      int st = 0;
      if (::waitpid(sched_, &st, WNOHANG) == sched_) {
        untrack_child(sched_);
        sched_ = -1;
        throw std::runtime_error("dtask-scheduler exited at start");
      }
      if (seconds_since(t0) > 20) throw std::runtime_error("dtask-scheduler wrote no scheduler file in 20 s");
      std::this_thread::sleep_for(1ms);
    }
    g_sched_pid = sched_;
    for (int i = 0; i < n_workers; ++i) {
      // --no-restart: the pid spawned is the worker itself (not its supervisor), whose CPU time
      // workers_cpu_s reads.
      std::vector<std::string> wargs = {g_opt.worker_exe, "--scheduler-file", file, "--name", std::to_string(i),
                                        "--nthreads", "1", "--plugin", g_opt.plugin, "--log-level", "error", fast_paths,
                                        "--no-restart"};
      wargs.insert(wargs.end(), g_worker_args.begin(), g_worker_args.end());
      workers_.push_back(spawn(wargs));
    }
    auto f = dtask::read_scheduler_file(file);
    if (!f.ok()) throw std::runtime_error(f.error);
    if (scheduler_timeout) f.connect.scheduler_timeout = *scheduler_timeout;
    f.connect.fast_paths = g_fast_paths;
    client_.emplace(f.connect);
    if (n_workers > 0 && !client_->wait_for_workers(static_cast<std::size_t>(n_workers), 30s)) {
      throw std::runtime_error("workers did not register within 30 s");
    }
    if (g_browser) {
      if (f.dashboard_link.empty()) throw std::runtime_error("W11: the scheduler serves no dashboard");
      // A live page (it polls the snapshot every 400 ms) until the case ends: --remote-debugging-port
      // keeps headless chromium running instead of printing the DOM and leaving.
      // Through sh for its stderr (chromium's own chatter); own group, so close() stops it whole.
      browser_ = spawn({"/bin/sh", "-c",
                        "exec /usr/bin/chromium --headless --no-sandbox --disable-gpu --no-first-run "
                        "--disable-background-networking --disable-component-update --disable-sync "
                        "--remote-debugging-port=0 --user-data-dir='" + dir_ + "/browser' '" + f.dashboard_link +
                            "' 2>/dev/null"},
                       true, true);
      // Chromium starting up takes about 4 s of CPU over its first 3 s on this machine; the case
      // measures a browser that watches, not one that starts, so the clock starts once it settled.
      std::this_thread::sleep_for(6s);
    }
    start_s = seconds_since(t0);
  }

  std::string dir_;
  pid_t browser_ = -1;
  pid_t sched_ = -1;
  std::vector<pid_t> workers_;
  std::optional<dtask::Client> client_;
  bool closed_ = false;
};

// Scheduler and worker figures for one case: peak RSS, memory per task, CPU seconds.
struct Probe {
  SpawnedCluster& c;
  long base_kb = 0;
  double sched_cpu0 = 0, workers_cpu0 = 0, self_cpu0 = 0;
  explicit Probe(SpawnedCluster& cl) : c(cl) {
    reset_peak_rss(c.scheduler_pid());
    base_kb = proc_status_kb(c.scheduler_pid(), "VmRSS");
    sched_cpu0 = proc_cpu_s(c.scheduler_pid());
    for (pid_t w : c.worker_pids()) workers_cpu0 += proc_cpu_s(w);
    self_cpu0 = self_cpu_s();
  }
  void finish(json& r, long long tasks) {
    long hwm = proc_status_kb(c.scheduler_pid(), "VmHWM");
    r["sched_peak_rss_mb"] = static_cast<double>(hwm) / 1024.0;
    if (tasks > 0) r["sched_bytes_per_task"] = static_cast<double>(hwm - base_kb) * 1024.0 / static_cast<double>(tasks);
    r["sched_cpu_s"] = proc_cpu_s(c.scheduler_pid()) - sched_cpu0;
    double wc = 0;
    for (pid_t w : c.worker_pids()) wc += proc_cpu_s(w);
    r["workers_cpu_s"] = wc - workers_cpu0;
    r["client_cpu_s"] = self_cpu_s() - self_cpu0;
  }
};

// One case: a fresh cluster, the body, the scheduler figures, failures as ok=false records.
void run_case(const std::string& w, const std::string& variant, long long n, int n_workers,
              const std::function<void(SpawnedCluster&, json&)>& body, bool secure_override_insecure = false) {
  json r = record(w, variant, n);
  bool secure = g_opt.secure && !secure_override_insecure;
  if (!secure) r["config"] = "dtask-insecure";
  CaseGuard guard(r, g_opt.case_timeout_s);
  try {
    SpawnedCluster cluster(n_workers, secure);
    Probe probe(cluster);
    body(cluster, r);
    long long tasks = r.contains("tasks") ? r["tasks"].get<long long>() : n;
    probe.finish(r, tasks);
    cluster.close();
  } catch (const std::exception& e) {
    r["ok"] = false;
    r["error"] = std::string("exception: ") + e.what();
  }
  emit(r);
}

void fail_unless(bool ok, json& r, const std::string& why) {
  if (!ok && r["ok"].get<bool>()) {
    r["ok"] = false;
    r["error"] = why;
  }
}

// ---------------------------------------------------------------------------------------------
// W1: the seed's 256 chains, and cluster start + stop

void w1() {
  const int n = 256;
  run_case("W1", "chains", n, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    auto t0 = Clock::now();
    std::vector<dtask::Delayed<long long>> zs;
    for (int i = 0; i < n; ++i) {
      auto x = dtask::delayed(inc, static_cast<long long>(i));
      auto y = dtask::delayed(dec, x);
      zs.push_back(dtask::delayed(add, x, y));
    }
    auto futs = c.client().persist(zs);
    double sub = seconds_since(t0);
    auto res = c.client().gather(futs);
    double wall = seconds_since(t0);
    bool ok = res.size() == static_cast<std::size_t>(n);
    for (int i = 0; ok && i < n; ++i) ok = res[static_cast<std::size_t>(i)] == 2 * i + 1;
    r["wall_s"] = wall;
    r["tasks"] = 3 * n;
    r["tasks_per_s"] = 3 * n / wall;
    r["submit_s"] = sub;
    fail_unless(ok, r, "wrong results");
  });

  // Start = cluster + client + all workers registered; stop = client close + cluster close.
  // `cluster-start-stop` is LocalCluster(processes=true), the same shape as Dask's
  // LocalCluster(processes=True); the in-process (threads) and spawned-CLI forms are extra rows.
  auto local = [&](const std::string& variant, bool processes) {
    json r = record("W1", variant, g_opt.workers);
    CaseGuard guard(r, 120);
    try {
      std::vector<double> starts, stops;
      for (int rep = 0; rep < 3; ++rep) {
        auto t0 = Clock::now();
        dtask::LocalClusterOptions o;
        o.n_workers = g_opt.workers;
        o.plugin = g_opt.plugin;
        o.processes = processes;
        o.secure = g_opt.secure;
        o.log_level = "error";
        o.fast_paths = g_fast_paths;
        auto cluster = std::make_unique<dtask::LocalCluster>(o);
        auto client = std::make_unique<dtask::Client>(*cluster);
        if (!client->wait_for_workers(static_cast<std::size_t>(g_opt.workers), 30s)) throw std::runtime_error("workers did not come");
        starts.push_back(seconds_since(t0));
        if (client->submit(inc, 1LL).result() != 2) throw std::runtime_error("wrong result");
        auto t1 = Clock::now();
        client->close();
        cluster->close();
        client.reset();
        cluster.reset();
        stops.push_back(seconds_since(t1));
      }
      r["start_s"] = median(starts);
      r["stop_s"] = median(stops);
      r["wall_s"] = median(starts) + median(stops);
      r["reps"] = 3;
    } catch (const std::exception& e) {
      r["ok"] = false;
      r["error"] = std::string("exception: ") + e.what();
    }
    emit(r);
  };
  local("cluster-start-stop", true);
  local("cluster-start-stop-threads", false);
  {
    json r = record("W1", "cluster-start-stop-cli", g_opt.workers);
    CaseGuard guard(r, 120);
    try {
      std::vector<double> starts, stops;
      for (int rep = 0; rep < 3; ++rep) {
        SpawnedCluster c(g_opt.workers, g_opt.secure);
        if (c.client().submit(inc, 1LL).result() != 2) throw std::runtime_error("wrong result");
        c.close();
        starts.push_back(c.start_s);
        stops.push_back(c.stop_s);
      }
      r["start_s"] = median(starts);
      r["stop_s"] = median(stops);
      r["wall_s"] = median(starts) + median(stops);
      r["reps"] = 3;
    } catch (const std::exception& e) {
      r["ok"] = false;
      r["error"] = std::string("exception: ") + e.what();
    }
    emit(r);
  }
}

// ---------------------------------------------------------------------------------------------
// W2: independent no-op tasks through map and through delayed

void w2_case(const std::string& workload, const std::string& variant, long long n, const std::string& label = "");

void w2() {
  std::vector<long long> sizes = g_opt.small ? std::vector<long long>{1000, 10000}
                                             : std::vector<long long>{10000, 100000, 1000000};
  if (!g_opt.w2_sizes.empty()) sizes = g_opt.w2_sizes;
  for (const char* variant : {"map", "delayed"}) {
    for (long long n : sizes) w2_case("W2", variant, n);
  }
}

// One W2 case: n no-op tasks through map or delayed (also one of FP's rows).
void w2_case(const std::string& workload, const std::string& variant, long long n, const std::string& label) {
  run_case(workload, label.empty() ? variant : label, n, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    auto t0 = Clock::now();
    std::vector<dtask::Future<std::nullptr_t>> futs;
    if (variant == "map") {
      std::vector<long long> xs(static_cast<std::size_t>(n));
      for (long long i = 0; i < n; ++i) xs[static_cast<std::size_t>(i)] = i;
      futs = c.client().map(noop, xs);
    } else {
      std::vector<dtask::Delayed<std::nullptr_t>> ds;
      ds.reserve(static_cast<std::size_t>(n));
      for (long long i = 0; i < n; ++i) ds.push_back(dtask::delayed(noop, i));
      futs = c.client().persist(ds);
    }
    double sub = seconds_since(t0);
    auto res = c.client().gather(futs);
    double wall = seconds_since(t0);
    r["wall_s"] = wall;
    r["tasks_per_s"] = static_cast<double>(n) / wall;
    r["submit_s"] = sub;
    fail_unless(res.size() == static_cast<std::size_t>(n), r, "wrong count");
    auto t1 = Clock::now();
    futs.clear();  // release (not timed, but reported: it is what ends a real workload)
    r["release_s"] = seconds_since(t1);
  });
}

// ---------------------------------------------------------------------------------------------
// W3: sequential submit(inc, i).result()

void w3(const std::string& workload = "W3", long long n_rounds = 0) {
  long long n = n_rounds > 0 ? n_rounds : (g_opt.small ? 500 : 10000);
  run_case(workload, "submit-result", n, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    for (int i = 0; i < 20; ++i) c.client().submit(inc, static_cast<long long>(i)).result();  // warm-up
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    long long bad = 0;
    auto t0 = Clock::now();
    for (long long i = 0; i < n; ++i) {
      auto s = Clock::now();
      long long v = c.client().submit(inc, i).result();
      lat.push_back(seconds_since(s) * 1e6);
      bad += v != i + 1;
    }
    double wall = seconds_since(t0);
    r["wall_s"] = wall;
    r["tasks_per_s"] = static_cast<double>(n) / wall;
    r["p50_us"] = percentile(lat, 50);
    r["p90_us"] = percentile(lat, 90);
    r["p99_us"] = percentile(lat, 99);
    r["max_us"] = percentile(lat, 100);
    // Results that came straight from the worker (3 hops) rather than through the scheduler.
    r["results_pushed"] = dtask::detail::ClientInternals::counters(c.client()).results_pushed;
    // ...and of those, tasks the client asked that worker to start before the scheduler placed them.
    r["early_starts"] = dtask::detail::ClientInternals::counters(c.client()).early_starts;
    fail_unless(bad == 0, r, std::to_string(bad) + " wrong");
  });
}

// ---------------------------------------------------------------------------------------------
// W4: pairwise tree reduction; the leaves are literals, so every add is a task (2^k - 1 tasks)

void w4() {
  long long leaves = g_opt.small ? (1 << 10) : (1 << 15);
  run_case("W4", "tree-reduce", leaves, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    auto t0 = Clock::now();
    std::vector<dtask::Delayed<long long>> level;
    long long ntasks = 0;
    for (long long i = 0; i < leaves; i += 2) level.push_back(dtask::delayed(add, i, i + 1));
    ntasks += static_cast<long long>(level.size());
    while (level.size() > 1) {
      std::vector<dtask::Delayed<long long>> next;
      for (std::size_t i = 0; i + 1 < level.size(); i += 2) next.push_back(dtask::delayed(add, level[i], level[i + 1]));
      ntasks += static_cast<long long>(next.size());
      level = std::move(next);
    }
    auto fut = c.client().persist(level).at(0);
    double sub = seconds_since(t0);
    long long res = fut.result();
    double wall = seconds_since(t0);
    r["wall_s"] = wall;
    r["tasks"] = ntasks;
    r["tasks_per_s"] = static_cast<double>(ntasks) / wall;
    r["submit_s"] = sub;
    fail_unless(res == leaves * (leaves - 1) / 2, r, "wrong sum " + std::to_string(res));
  });
}

// ---------------------------------------------------------------------------------------------
// W5: all-to-all (k producers, k consumers taking all k outputs), its shuffle-style split form,
// and merge (N leaves into one task)

std::vector<long long> a2a_expected(long long k) {
  std::vector<long long> e;
  for (long long j = 0; j < k; ++j) e.push_back(k * (k - 1) / 2 * k + k * j);
  return e;
}

void w5() {
  long long k = g_opt.small ? 20 : 100;
  long long m = g_opt.small ? 5000 : 100000;
  run_case("W5", "all-to-all", k, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    auto t0 = Clock::now();
    std::vector<dtask::Delayed<std::vector<long long>>> prods;
    for (long long i = 0; i < k; ++i) prods.push_back(dtask::delayed(produce, i, k));
    std::vector<dtask::Delayed<long long>> cons;
    for (long long j = 0; j < k; ++j) cons.push_back(dtask::delayed(consume, j, prods));
    auto futs = c.client().persist(cons);
    double sub = seconds_since(t0);
    auto res = c.client().gather(futs);
    double wall = seconds_since(t0);
    r["wall_s"] = wall;
    r["tasks"] = 2 * k;
    r["edges"] = k * k;
    r["tasks_per_s"] = static_cast<double>(2 * k) / wall;
    r["submit_s"] = sub;
    fail_unless(res == a2a_expected(k), r, "wrong results");
  });
  run_case("W5", "all-to-all-split", k, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    auto t0 = Clock::now();
    std::vector<dtask::Delayed<std::vector<long long>>> prods;
    for (long long i = 0; i < k; ++i) prods.push_back(dtask::delayed(produce, i, k));
    std::vector<dtask::Delayed<long long>> cons;
    for (long long j = 0; j < k; ++j) {
      std::vector<dtask::Delayed<long long>> parts;
      for (auto& p : prods) parts.push_back(dtask::delayed(take, p, j));
      cons.push_back(dtask::delayed(sum_all, parts));
    }
    auto futs = c.client().persist(cons);
    double sub = seconds_since(t0);
    auto res = c.client().gather(futs);
    double wall = seconds_since(t0);
    long long ntasks = k + k * k + k;
    r["wall_s"] = wall;
    r["tasks"] = ntasks;
    r["edges"] = 2 * k * k;
    r["tasks_per_s"] = static_cast<double>(ntasks) / wall;
    r["submit_s"] = sub;
    fail_unless(res == a2a_expected(k), r, "wrong results");
  });
  run_case("W5", "merge", m, g_opt.workers, [&](SpawnedCluster& c, json& r) {
    auto t0 = Clock::now();
    std::vector<dtask::Delayed<long long>> leaves;
    leaves.reserve(static_cast<std::size_t>(m));
    for (long long i = 0; i < m; ++i) leaves.push_back(dtask::delayed(ident, i));
    auto total = dtask::delayed(sum_all, leaves);
    auto fut = c.client().persist(std::vector<dtask::Delayed<long long>>{total}).at(0);
    double sub = seconds_since(t0);
    long long res = fut.result();
    double wall = seconds_since(t0);
    r["wall_s"] = wall;
    r["tasks"] = m + 1;
    r["edges"] = m;
    r["tasks_per_s"] = static_cast<double>(m + 1) / wall;
    r["submit_s"] = sub;
    fail_unless(res == m * (m - 1) / 2, r, "wrong sum " + std::to_string(res));
  });
}

// ---------------------------------------------------------------------------------------------
// W6: a worker-to-worker transfer, against raw ZeroMQ on the same loopback in the same run

std::string g_self_exe;  // this program, for the raw ZeroMQ probe

double raw_zmq_mb_per_s(std::size_t size, bool curve, int reps, double* best_out) {
  // A ROUTER serving one preallocated buffer zero-copy (as a dtask worker serves a stored
  // result) and a DEALER asking for it: the floor under any ZeroMQ-based transfer.
  zmq::context_t sctx(1), cctx(1);
  zmq::socket_t server(sctx, zmq::socket_type::router), client(cctx, zmq::socket_type::dealer);
  dtask::Security sec = curve ? dtask::Security::generate() : dtask::Security::none();
  std::unique_ptr<dtask::transport::ZapAuthenticator> zap;
  if (curve) zap = std::make_unique<dtask::transport::ZapAuthenticator>(sctx, sec.client_public);
  dtask::transport::configure_socket(server);
  dtask::transport::make_curve_server(server, sec);
  std::string ep = dtask::transport::bind_tcp(server, "127.0.0.1", 0);
  dtask::transport::configure_socket(client);
  dtask::transport::make_curve_client(client, sec);
  client.connect(ep);
  auto data = std::make_shared<std::vector<std::uint8_t>>(size, 7);
  std::atomic<bool> stop{false};
  std::thread srv([&] {
    while (!stop) {
      zmq::pollitem_t it{server.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&it, 1, 50ms) <= 0) continue;
      zmq::message_t id, req;
      if (!server.recv(id, zmq::recv_flags::none)) continue;
      if (!server.recv(req, zmq::recv_flags::none)) continue;
      server.send(id, zmq::send_flags::sndmore);
      server.send(zmq::str_buffer("hdr"), zmq::send_flags::sndmore);
      zmq::message_t body(data->data(), data->size(), [](void*, void*) {}, nullptr);
      server.send(body, zmq::send_flags::none);
    }
  });
  std::vector<double> times;
  for (int i = -1; i < reps; ++i) {  // one untimed warm-up: connection and CURVE handshake
    auto t0 = Clock::now();
    client.send(zmq::str_buffer("get"), zmq::send_flags::none);
    zmq::message_t hdr, body;
    (void)client.recv(hdr, zmq::recv_flags::none);
    (void)client.recv(body, zmq::recv_flags::none);
    if (i >= 0) times.push_back(seconds_since(t0));
    if (body.size() != size) throw std::runtime_error("raw zmq: short message");
  }
  stop = true;
  srv.join();
  client.close();
  server.close();
  std::sort(times.begin(), times.end());
  if (best_out) *best_out = times.front();
  return static_cast<double>(size) / 1e6 / median(times);
}

// raw_zmq_mb_per_s in a child process (see --raw-zmq-probe in main): the floor is measured
// with the same allocator settings as the dtask workers it is compared with, not the client's.
double raw_zmq_probe(std::size_t size, bool curve, int reps, double* best_out) {
  std::string cmd = "'" + g_self_exe + "' --raw-zmq-probe " + std::to_string(size) + " " + (curve ? "1" : "0") + " " +
                    std::to_string(reps);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot start the raw ZeroMQ probe");
  double mbs = 0, best = 0;
  int got = std::fscanf(p, "%lf %lf", &mbs, &best);
  int st = ::pclose(p);
  if (got != 2 || st != 0 || mbs <= 0) throw std::runtime_error("the raw ZeroMQ probe failed (status " + std::to_string(st) + ")");
  if (best_out) *best_out = best;
  return mbs;
}

void w6() {
  long long size = (g_opt.small ? 8LL : 64LL) << 20;
  // Medians of 5 (dask_bench.py takes 3): loopback bandwidth on a shared 2-core VM is noisy.
  const int reps = 5;
  double raw_plain = 0, raw_curve = 0;
  for (bool curve : {false, true}) {
    json r = record("W6", curve ? "raw-zmq-curve" : "raw-zmq", size);
    r["config"] = "raw";
    CaseGuard guard(r, 300);
    try {
      double best = 0;
      // More repetitions than the dtask cases: each is a few milliseconds, and one slow fresh
      // process (its first huge pages) must not lower the floor everything is compared with.
      const int raw_reps = 2 * reps + 1;
      double mbs = raw_zmq_probe(static_cast<std::size_t>(size), curve, raw_reps, &best);
      r["mb_per_s"] = mbs;
      r["wall_s"] = static_cast<double>(size) / 1e6 / mbs;
      r["best_s"] = best;
      r["reps"] = raw_reps;
      (curve ? raw_curve : raw_plain) = mbs;
    } catch (const std::exception& e) {
      r["ok"] = false;
      r["error"] = e.what();
    }
    emit(r);
  }
  // dtask, with CURVE (the default) and without, each against the matching raw figure. The
  // consumer reads the bytes in place (`transfer`, a std::span parameter) or decodes them into a
  // std::vector first (`transfer-copy`: one more allocation and copy of 64 MiB on the consumer).
  for (bool insecure : {false, true}) {
    if (!g_opt.secure && !insecure) continue;
    for (bool copy : {false, true}) {
    run_case("W6", copy ? "transfer-copy" : "transfer", size, std::max(2, g_opt.workers), [&](SpawnedCluster& c, json& r) {
      std::vector<double> times;
      dtask::SubmitOptions on_a, on_b;
      on_a.workers = {"0"};
      on_b.workers = {"1"};
      for (int rep = 0; rep < reps; ++rep) {
        auto src = c.client().submit(on_a, make_bytes, size);
        if (!c.client().wait(std::vector<dtask::Future<std::vector<std::uint8_t>>>{src}, 60s)) {
          throw std::runtime_error("the source was not produced in 60 s");
        }
        auto t0 = Clock::now();
        long long got = copy ? c.client().submit(on_b, len, src).result() : c.client().submit(on_b, len_view, src).result();
        times.push_back(seconds_since(t0));
        if (got != size) throw std::runtime_error("consumer saw " + std::to_string(got) + " bytes");
      }
      double med = median(times);
      r["wall_s"] = med;
      r["best_s"] = *std::min_element(times.begin(), times.end());
      r["mb_per_s"] = static_cast<double>(size) / 1e6 / med;
      r["reps"] = reps;
      double raw = insecure ? raw_plain : raw_curve;
      if (raw > 0) r["pct_of_raw"] = 100.0 * r["mb_per_s"].get<double>() / raw;
      r["tasks"] = 2 * reps;
    }, insecure);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// W7: `mpirun -n 4 dtask-run plugin.so` with one task, against an MPI hello world

double time_command(const std::vector<std::string>& args, double timeout_s, int* status_out) {
  auto t0 = Clock::now();
  pid_t pid = spawn(args, true, true);
  int st = reap(pid, std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000)));
  if (st == -1) ::kill(-pid, SIGKILL);  // mpirun's children
  *status_out = st;
  return seconds_since(t0);
}

void w7() {
  const int reps = g_opt.small ? 1 : 3;
  std::string mpirun = "/usr/bin/mpirun";
  std::vector<std::string> mpi = {mpirun, "-n", "4", "--allow-run-as-root", "--oversubscribe"};
  bool have_mpi = ::access(mpirun.c_str(), X_OK) == 0;
  double hello = 0;
  {
    json r = record("W7", "mpi-hello", 4);
    r["config"] = "mpi";
    if (!have_mpi || g_opt.mpi_hello_exe.empty() || ::access(g_opt.mpi_hello_exe.c_str(), X_OK) != 0) {
      r["skipped"] = true;
      r["note"] = "mpirun or mpi_hello not available";
    } else {
      CaseGuard guard(r, 300);
      std::vector<double> t;
      for (int i = 0; i < reps; ++i) {
        auto args = mpi;
        args.push_back(g_opt.mpi_hello_exe);
        int st = 0;
        t.push_back(time_command(args, 120, &st));
        fail_unless(st == 0, r, "mpi_hello exited with status " + std::to_string(st));
      }
      hello = median(t);
      r["wall_s"] = hello;
      r["reps"] = reps;
    }
    emit(r);
  }
  json r = record("W7", "dtask-run", 4);
  if (g_opt.dtask_run_exe.empty() || ::access(g_opt.dtask_run_exe.c_str(), X_OK) != 0) {
    std::printf("W7 skipped: dtask-run not built\n");
    r["skipped"] = true;
    r["note"] = "dtask-run not built";
    emit(r);
    return;
  }
  if (!have_mpi) {
    r["skipped"] = true;
    r["note"] = "mpirun not available";
    emit(r);
    return;
  }
  CaseGuard guard(r, 600);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto args = mpi;
    args.push_back(g_opt.dtask_run_exe);
    args.push_back("--fast-paths=" + g_fast_paths.to_string());
    args.push_back(g_opt.plugin);
    int st = 0;
    t.push_back(time_command(args, 120, &st));
    fail_unless(st == 0, r, "mpirun dtask-run exited with status " + std::to_string(st));
  }
  r["wall_s"] = median(t);
  r["reps"] = reps;
  r["tasks"] = 1;
  if (hello > 0) r["vs_mpi_hello"] = median(t) / hello;
  emit(r);
}

// ---------------------------------------------------------------------------------------------
// W8: one scheduler, many simulated workers (each a real ZeroMQ DEALER connection that answers
// every ComputeTask at once with TaskDone), all in this process

class SimWorkers {
 public:
  SimWorkers(std::string address, int n) : address_(std::move(address)), n_(n) {
    // ZeroMQ caps a context at 1023 sockets by default.
    for (int i = 0; i < n_; i += 500) {
      ctxs_.push_back(std::make_unique<zmq::context_t>(1));
    }
    socks_.reserve(static_cast<std::size_t>(n_));
    for (int i = 0; i < n_; ++i) {
      socks_.emplace_back(*ctxs_[static_cast<std::size_t>(i / 500)], zmq::socket_type::dealer);
      dtask::transport::configure_socket(socks_.back());
      socks_.back().set(zmq::sockopt::linger, 0);
    }
    welcomed_.assign(static_cast<std::size_t>(n_), 0);
  }
  ~SimWorkers() { stop(); }

  void start() { thread_ = std::thread([this] { run(); }); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool all_welcomed(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (n_welcomed_.load() == n_) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  double register_s() const { return register_s_.load(); }
  std::uint64_t answered() const { return answered_.load(); }
  pthread_t native() { return thread_.native_handle(); }

 private:
  void run() {
    auto t0 = Clock::now();
    for (int i = 0; i < n_; ++i) {
      auto& s = socks_[static_cast<std::size_t>(i)];
      s.connect(address_);
      proto::RegisterWorker reg;
      reg.name = "sim-" + std::to_string(i);
      reg.host = "sim";
      reg.address = "tcp://127.0.0.1:1/sim-" + std::to_string(i);  // never dialled: results are not fetched
      reg.nthreads = 1;
      reg.pid = ::getpid();
      dtask::transport::send_batch(s, nullptr, std::vector<proto::WorkerToScheduler>{reg});
    }
    // epoll over each socket's ZMQ_FD, so one wake-up costs O(sockets with input), not
    // O(all sockets) as zmq_poll does: the simulation must stay light at 1,000 workers or it, not
    // the scheduler, is what is measured. ZMQ_FD is edge-like: a ready socket is drained to EAGAIN
    // and re-checked (ZMQ_EVENTS) after each send, which may consume its signal.
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) throw std::runtime_error("epoll_create1 failed");
    for (int i = 0; i < n_; ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<std::uint32_t>(i);
      int fd = socks_[static_cast<std::size_t>(i)].get(zmq::sockopt::fd);
      ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    std::vector<epoll_event> events(static_cast<std::size_t>(n_));
    std::vector<char> queued(static_cast<std::size_t>(n_), 1);
    std::vector<int> ready(static_cast<std::size_t>(n_));
    for (int i = 0; i < n_; ++i) ready[static_cast<std::size_t>(i)] = i;  // check all once
    std::vector<proto::WorkerToScheduler> out;
    auto last_beat = Clock::now();
    bool goodbye = false;
    auto serve = [&](int i, bool beat) {
      auto& s = socks_[static_cast<std::size_t>(i)];
      out.clear();
      while (auto rcv = dtask::transport::try_recv(s, false)) {
        auto d = dtask::transport::decode<proto::SchedulerToWorker>(*rcv);
        for (auto& m : d.messages) {
          if (auto* c = std::get_if<proto::ComputeTask>(&m)) {
            proto::TaskDone done;  // fields by name: the message may grow
            done.task = c->task;
            done.nbytes = 1;
            out.push_back(std::move(done));
          } else if (auto* st = std::get_if<proto::StealRequest>(&m)) {
            proto::StealReply reply;
            reply.task = st->task;
            reply.stolen = false;
            out.push_back(std::move(reply));
          } else if (std::holds_alternative<proto::WorkerWelcome>(m)) {
            if (!welcomed_[static_cast<std::size_t>(i)]) {
              welcomed_[static_cast<std::size_t>(i)] = 1;
              if (++n_welcomed_ == n_) register_s_ = seconds_since(t0);
            }
          } else if (std::holds_alternative<proto::WorkerShutdown>(m)) {
            out.push_back(proto::WorkerGoodbye{});
            goodbye = true;
          }
        }
      }
      answered_ += out.size();
      if (beat && welcomed_[static_cast<std::size_t>(i)] && !goodbye) {
        proto::Heartbeat hb;
        hb.sent_ms = dtask::transport::now_ms();
        out.push_back(hb);
      }
      if (!out.empty()) dtask::transport::send_batch(s, nullptr, out);
    };
    while (!stop_) {
      // Sockets found ready (by epoll or by a re-check) are served until none is left.
      while (!ready.empty() && !stop_) {
        std::vector<int> now;
        now.swap(ready);
        for (int i : now) queued[static_cast<std::size_t>(i)] = 0;
        for (int i : now) {
          serve(i, false);
          auto& s = socks_[static_cast<std::size_t>(i)];
          if ((s.get(zmq::sockopt::events) & ZMQ_POLLIN) && !queued[static_cast<std::size_t>(i)]) {
            queued[static_cast<std::size_t>(i)] = 1;
            ready.push_back(i);
          }
        }
      }
      if (Clock::now() - last_beat > 300ms) {
        last_beat = Clock::now();
        for (int i = 0; i < n_; ++i) serve(i, true);
        for (int i = 0; i < n_; ++i) {
          if ((socks_[static_cast<std::size_t>(i)].get(zmq::sockopt::events) & ZMQ_POLLIN) &&
              !queued[static_cast<std::size_t>(i)]) {
            queued[static_cast<std::size_t>(i)] = 1;
            ready.push_back(i);
          }
        }
      }
      int k = ::epoll_wait(ep, events.data(), n_, 20);
      for (int e = 0; e < k; ++e) {
        int i = static_cast<int>(events[static_cast<std::size_t>(e)].data.u32);
        if (!queued[static_cast<std::size_t>(i)]) {
          queued[static_cast<std::size_t>(i)] = 1;
          ready.push_back(i);
        }
      }
    }
    ::close(ep);
  }

  std::string address_;
  int n_;
  std::vector<std::unique_ptr<zmq::context_t>> ctxs_;
  std::vector<zmq::socket_t> socks_;
  std::vector<char> welcomed_;
  std::atomic<int> n_welcomed_{0};
  std::atomic<double> register_s_{0};
  std::atomic<std::uint64_t> answered_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void w8() {
  std::vector<int> counts = {8, 100, 1000};
  if (!g_opt.w8_counts.empty()) counts.assign(g_opt.w8_counts.begin(), g_opt.w8_counts.end());
  long long n = g_opt.small ? 20000 : 200000;
  double base = 0;
  for (int k : counts) {
    json r = record("W8", "sim-workers-" + std::to_string(k), n);
    r["workers"] = k;
    r["config"] = "dtask-insecure";
    CaseGuard guard(r, g_opt.case_timeout_s);
    try {
      reset_peak_rss(::getpid());
      dtask::scheduler::SchedulerOptions so;
      so.security = dtask::Security::none();
      so.where = "w8";
      so.config.fast_paths = g_fast_paths;
      auto server = std::make_unique<dtask::scheduler::SchedulerServer>(so);
      std::thread server_thread([&] { server->run(); });
      SimWorkers sims(server->address(), k);
      sims.start();
      bool reg_ok = sims.all_welcomed(60s);
      r["register_s"] = reg_ok ? sims.register_s() : -1.0;
      dtask::ConnectOptions co;
      co.address = server->address();
      co.security = dtask::Security::none();
      co.fast_paths = g_fast_paths;
      std::optional<dtask::Client> client;
      client.emplace(co);
      if (!reg_ok || !client->wait_for_workers(static_cast<std::size_t>(k), 30s)) {
        throw std::runtime_error("only some simulated workers registered within 60 s");
      }
      std::vector<long long> xs(static_cast<std::size_t>(n));
      for (long long i = 0; i < n; ++i) xs[static_cast<std::size_t>(i)] = i;
      double sched_cpu0 = thread_cpu_s(server_thread.native_handle());
      double sim_cpu0 = thread_cpu_s(sims.native());
      double self_cpu0 = self_cpu_s();
      auto t0 = Clock::now();
      auto futs = client->map(noop, xs);
      bool done = client->wait(futs, std::chrono::milliseconds(static_cast<long long>(g_opt.case_timeout_s * 1000)));
      double wall = seconds_since(t0);
      double sched_cpu = thread_cpu_s(server_thread.native_handle()) - sched_cpu0;
      double sim_cpu = thread_cpu_s(sims.native()) - sim_cpu0;
      std::size_t finished = 0;
      for (auto& f : futs) finished += f.status() == dtask::FutureStatus::finished;
      fail_unless(done && finished == static_cast<std::size_t>(n), r,
                  std::to_string(finished) + " of " + std::to_string(n) + " finished");
      r["wall_s"] = wall;
      r["tasks_per_s"] = static_cast<double>(n) / wall;
      r["sched_cpu_s"] = sched_cpu;
      r["sched_cpu_us_per_task"] = sched_cpu * 1e6 / static_cast<double>(n);
      r["sim_cpu_s"] = sim_cpu;
      r["client_cpu_s"] = self_cpu_s() - self_cpu0 - sched_cpu - sim_cpu;
      if (k == counts.front()) base = r["tasks_per_s"].get<double>();
      if (base > 0) r["rel_to_8"] = r["tasks_per_s"].get<double>() / base;
      futs.clear();
      client->close();
      client.reset();
      server->stop(0);
      server_thread.join();
      sims.stop();
      r["proc_peak_rss_mb"] = static_cast<double>(proc_status_kb(::getpid(), "VmHWM")) / 1024.0;
    } catch (const std::exception& e) {
      r["ok"] = false;
      r["error"] = std::string("exception: ") + e.what();
    }
    emit(r);
  }
}

// ---------------------------------------------------------------------------------------------
// W9: one graph of 1M and of 10M tasks: submission time and scheduler memory per task. No
// worker is attached, so the whole graph stays in the scheduler (roots queued, the rest
// waiting) while its memory is read.

// The scheduler's own data structures for the same graph, without the wire: SubmitTasks
// messages fed straight into a SchedulerState in this process (chunks of 10,000, as the client
// sends them). Live heap bytes (mallinfo2) before and after, so memory that the allocator kept
// from transient decoding does not count: this is what the graph itself costs.
void w9_state(long long target) {
  long long leaves = target / 2;
  long long ntasks = 2 * leaves - 1;
  json r = record("W9", "scheduler-state", target);
  r["config"] = "in-process";
  r["tasks"] = ntasks;
  r["edges"] = 2 * (leaves - 1);
  CaseGuard guard(r, g_opt.case_timeout_s);
  try {
    namespace sch = dtask::scheduler;
    ::malloc_trim(0);
    auto live = [] {
      struct mallinfo2 mi = ::mallinfo2();
      return static_cast<long long>(mi.uordblks + mi.hblkhd);
    };
    long long before = live();
    auto state = std::make_unique<sch::SchedulerState>();
    sch::Outbox out;
    proto::RegisterClient reg;
    reg.name = "bench";
    auto cid = state->add_client(reg, "client-id", 0, out);
    out.to_clients.clear();
    double ingest_s = 0;
    std::vector<proto::TaskSpec> chunk;
    auto flush_chunk = [&] {
      proto::SubmitTasks m;
      m.tasks = std::move(chunk);
      chunk.clear();
      auto t0 = Clock::now();
      state->handle(*cid, proto::ClientToScheduler{std::move(m)}, 0, out);
      ingest_s += seconds_since(t0);
      out.to_clients.clear();
      out.to_workers.clear();
    };
    auto spec = [](std::string key, std::string func, bool wanted) {
      proto::TaskSpec t;
      t.key = std::move(key);
      t.func = std::move(func);
      t.wanted = wanted;
      return t;
    };
    // Same shape and keys as the `graph` case: leaves ident(i), then a pairwise tree of adds.
    std::vector<std::string> level;
    level.reserve(static_cast<std::size_t>(leaves));
    for (long long i = 0; i < leaves; ++i) {
      auto t = spec(dtask::detail::fresh_key("ident"), "ident", false);
      proto::ClientArg a;
      a.data = dtask::encode(i);
      t.args.push_back(std::move(a));
      level.push_back(t.key);
      chunk.push_back(std::move(t));
      if (chunk.size() == 10000) flush_chunk();
    }
    while (level.size() > 1) {
      std::vector<std::string> next;
      std::size_t i = 0;
      for (; i + 1 < level.size(); i += 2) {
        auto t = spec(dtask::detail::fresh_key("add"), "add", false);
        for (int k = 0; k < 2; ++k) {
          proto::ClientArg a;
          a.kind = proto::ClientArg::dep;
          a.refs.push_back(level[i + static_cast<std::size_t>(k)]);
          t.args.push_back(std::move(a));
        }
        next.push_back(t.key);
        chunk.push_back(std::move(t));
        if (chunk.size() == 10000) flush_chunk();
      }
      if (i < level.size()) next.push_back(level[i]);
      level = std::move(next);
    }
    if (!chunk.empty()) chunk.back().wanted = true;  // the root, as the client marks it
    flush_chunk();
    level.clear();
    level.shrink_to_fit();
    chunk.shrink_to_fit();
    long long after = live();
    r["ingest_s"] = ingest_s;
    r["wall_s"] = ingest_s;
    r["tasks_per_s"] = static_cast<double>(ntasks) / ingest_s;
    r["sched_held_bytes_per_task"] = static_cast<double>(after - before) / static_cast<double>(ntasks);
    r["sizeof_scheduler_task"] = static_cast<long long>(sizeof(sch::Task));
    fail_unless(static_cast<long long>(state->n_tasks()) == ntasks, r,
                "the state holds " + std::to_string(state->n_tasks()) + " tasks, expected " + std::to_string(ntasks));
    state.reset();
  } catch (const std::exception& e) {
    r["ok"] = false;
    r["error"] = std::string("exception: ") + e.what();
  }
  emit(r);
}

// Waits for the scheduler's answer to an info request sent behind a big submission. A slow
// answer is fine while the client or the scheduler is still working (CPU time moves); when both
// sit idle for 30 s with no answer, the submission was lost, and a second client asks the
// scheduler what it holds, so the failure says what happened instead of hanging.
json await_info(SpawnedCluster& c, const std::string& what) {
  pid_t sp = c.scheduler_pid();
  double last_cpu = proc_cpu_s(sp) + self_cpu_s();
  auto last_progress = Clock::now();
  while (true) {
    try {
      return dtask::detail::ClientInternals::info_json(c.client(), 10s);
    } catch (const dtask::TimeoutError&) {
    }
    double cpu = proc_cpu_s(sp) + self_cpu_s();
    if (cpu > last_cpu + 0.1) {
      last_cpu = cpu;
      last_progress = Clock::now();
      continue;
    }
    if (seconds_since(last_progress) < 30) continue;
    std::string held = "unknown";
    try {
      auto f = dtask::read_scheduler_file(c.scheduler_file());
      dtask::Client probe(f.connect);
      held = std::to_string(dtask::detail::ClientInternals::info_json(probe, 30s).value("n_tasks", -1LL));
    } catch (const std::exception& e) {
      held = std::string("unknown (") + e.what() + ")";
    }
    throw std::runtime_error("stalled: " + what + "; client and scheduler both idle for 30 s; scheduler RSS " +
                             std::to_string(proc_status_kb(sp, "VmRSS") / 1024) + " MB; a second client sees " +
                             held + " tasks in the scheduler");
  }
}

void w9() {
  std::vector<long long> sizes = g_opt.small ? std::vector<long long>{100000} : std::vector<long long>{1000000, 10000000};
  if (!g_opt.w9_sizes.empty()) sizes = g_opt.w9_sizes;
  bool state = g_opt.w9_variants.find("state") != std::string::npos;
  bool graph = g_opt.w9_variants.find("graph") != std::string::npos;
  for (long long target : sizes) {
    if (state) w9_state(target);
  }
  for (long long target : sizes) {
    if (!graph) continue;
    long long leaves = target / 2;  // tree: `leaves` ident tasks + (leaves - 1) adds
    long long ntasks = 2 * leaves - 1;
    json r = record("W9", "graph", target);
    r["tasks"] = ntasks;
    r["edges"] = 2 * (leaves - 1);
    CaseGuard guard(r, g_opt.case_timeout_s);
    try {
      // A graph this size keeps both ends busy for seconds; the default 15 s silence limit of a
      // client is raised so that a slow submission is measured, not reported as a lost scheduler.
      SpawnedCluster c(0, g_opt.secure, std::chrono::milliseconds(3600 * 1000));
      long self_rss0 = proc_status_kb(::getpid(), "VmRSS");
      g_phase = "building the graph in the client";
      auto tb = Clock::now();
      dtask::Delayed<long long> root;
      {
        std::vector<dtask::Delayed<long long>> level;
        level.reserve(static_cast<std::size_t>(leaves));
        for (long long i = 0; i < leaves; ++i) level.push_back(dtask::delayed(ident, i));
        while (level.size() > 1) {
          std::vector<dtask::Delayed<long long>> next;
          next.reserve(level.size() / 2 + 1);
          std::size_t i = 0;
          for (; i + 1 < level.size(); i += 2) next.push_back(dtask::delayed(add, level[i], level[i + 1]));
          if (i < level.size()) next.push_back(level[i]);
          level = std::move(next);
        }
        root = level.at(0);
      }
      r["build_s"] = seconds_since(tb);
      r["client_graph_mb"] = static_cast<double>(proc_status_kb(::getpid(), "VmRSS") - self_rss0) / 1024.0;
      {
        std::lock_guard lock(g_case_mutex);
        g_case_record["client_graph_mb"] = r["client_graph_mb"];
      }
      g_phase = "submitting (client persist + scheduler ingest)";
      pid_t sp = c.scheduler_pid();
      reset_peak_rss(sp);
      long base_kb = proc_status_kb(sp, "VmRSS");
      double cpu0 = proc_cpu_s(sp);
      double self_cpu0 = self_cpu_s();
      auto t0 = Clock::now();
      auto fut = c.client().persist(std::vector<dtask::Delayed<long long>>{root}).at(0);
      double handed = seconds_since(t0);
      // The info request travels behind the graph on the same connection: its answer means
      // every task before it has been taken in.
      auto info = await_info(c, "the scheduler did not take the graph in");
      double sub = seconds_since(t0);
      g_phase = "releasing the graph";
      long long n_tasks = info.value("n_tasks", 0LL);
      long held_kb = proc_status_kb(sp, "VmRSS");
      long peak_kb = proc_status_kb(sp, "VmHWM");
      r["submit_s"] = sub;
      r["client_handoff_s"] = handed;
      r["wall_s"] = sub;
      r["tasks_per_s"] = static_cast<double>(ntasks) / sub;
      r["sched_base_rss_mb"] = static_cast<double>(base_kb) / 1024.0;
      r["sched_peak_rss_mb"] = static_cast<double>(peak_kb) / 1024.0;
      r["sched_held_rss_mb"] = static_cast<double>(held_kb) / 1024.0;
      r["sched_bytes_per_task"] = static_cast<double>(peak_kb - base_kb) * 1024.0 / static_cast<double>(ntasks);
      r["sched_held_bytes_per_task"] = static_cast<double>(held_kb - base_kb) * 1024.0 / static_cast<double>(ntasks);
      r["sched_cpu_s"] = proc_cpu_s(sp) - cpu0;
      r["client_cpu_s"] = self_cpu_s() - self_cpu0;
      r["client_peak_rss_mb"] = static_cast<double>(proc_status_kb(::getpid(), "VmHWM")) / 1024.0;
      r["client_rss_delta_mb"] = static_cast<double>(proc_status_kb(::getpid(), "VmRSS") - self_rss0) / 1024.0;
      r["sizeof_scheduler_task"] = static_cast<long long>(sizeof(dtask::scheduler::Task));
      fail_unless(n_tasks == ntasks, r,
                  "the scheduler holds " + std::to_string(n_tasks) + " tasks, expected " + std::to_string(ntasks));
      // Releasing the graph: reported, not part of the figures above.
      auto tr = Clock::now();
      fut = {};
      root = {};
      auto info2 = await_info(c, "the scheduler did not answer after the release");
      r["release_s"] = seconds_since(tr);
      r["left_after_release"] = info2.value("n_tasks", -1LL);
      c.close();
    } catch (const std::exception& e) {
      r["ok"] = false;
      r["error"] = std::string("exception: ") + e.what();
    }
    emit(r);
  }
}

// ---------------------------------------------------------------------------------------------
// W10: memory (issue 15). W2's map with a memory_limit that is set but never reached, against no
// limit (the limit's bookkeeping must cost nothing measurable: goal within 3 %), in alternating
// pairs so a busy machine's drift hits both alike; then the spill files' write and read-back
// throughput against dd to the same directory (w10_spill).

void w10_spill();

// W11: the dashboard's cost (issue 16). W2's map with no dashboard against a headless browser on
// the dashboard, in alternating pairs like W10 (goal: at most 5 % slower).
void w11() {
  const long long n = g_opt.small ? 10000 : 100000;
  const int pairs = g_opt.small ? 1 : 3;
  for (int i = 0; i < pairs; ++i) {
    g_scheduler_args = {"--dashboard-address", "none"};
    g_browser = false;
    w2_case("W11", "map", n, "map-no-dashboard");
    g_scheduler_args = {"--dashboard-address", ":0"};
    g_browser = true;
    w2_case("W11", "map", n, "map-browser-on-dashboard");
  }
  g_scheduler_args.clear();
  g_browser = false;
}

void w10() {
  const long long n = g_opt.small ? 10000 : 100000;
  const int pairs = g_opt.small ? 1 : 3;
  for (int i = 0; i < pairs; ++i) {
    g_worker_args = {"--memory-limit", "0"};
    w2_case("W10", "map", n, "map-no-limit");
    g_worker_args = {"--memory-limit", "4GiB"};
    w2_case("W10", "map", n, "map-limit-unreached");
  }
  g_worker_args.clear();
  w10_spill();
}

// Spill files (src/worker/spill_files.hpp) against dd to the same directory: N results of 8 MiB
// of random bytes (incompressible: written as they are) written one after another, then read
// back, and dd writing and reading the same number of bytes in 8 MiB blocks. Neither syncs: both
// go through the page cache, as a worker's spilling does. Directory: $DTASK_BENCH_SPILL_DIR, else
// /var/tmp (a disk, not a tmpfs). Measured in a child process with the malloc settings a
// dtask-worker runs with (common/hugepages.hpp: a read-back allocates fresh memory for each
// result, dd reuses one buffer), like W6's raw floor; it prints the four times in seconds.
constexpr std::size_t kSpillBlock8M = 8 << 20;

// In the child (--spill-probe DIR N): "write_s read_s dd_write_s dd_read_s", or "error: ...".
int spill_probe(const std::string& dir, int n) {
  std::vector<dtask::Payload> payloads(static_cast<std::size_t>(n));
  std::mt19937_64 rng(42);
  for (auto& p : payloads) {
    std::vector<std::uint64_t> v(kSpillBlock8M / 8);
    for (auto& x : v) x = rng();
    p.header = "bench";
    p.frames.push_back(dtask::Buffer::adopt(std::move(v)));
  }
  auto file = [&](int i) { return dir + "/" + std::to_string(i) + ".spill"; };
  auto dd = [&](const std::string& args) {
    const std::string cmd = "dd " + args + " bs=8M count=" + std::to_string(n) + " status=none 2>&1";
    return std::system(cmd.c_str()) == 0;
  };
  double t[4] = {0, 0, 0, 0};
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto w = dtask::worker::write_spill_file(file(i), payloads[static_cast<std::size_t>(i)], true);
    if (!w.ok) return std::printf("error: %s\n", w.error.c_str()), 1;
  }
  t[0] = seconds_since(t0);
  payloads.clear();
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto rd = dtask::worker::read_spill_file(file(i));
    if (!rd.ok) return std::printf("error: %s\n", rd.error.c_str()), 1;
    if (rd.payload.nbytes() != kSpillBlock8M + 5) return std::printf("error: a spill file read back short\n"), 1;
  }
  t[1] = seconds_since(t0);
  t0 = Clock::now();
  if (!dd("if=/dev/zero of=" + dir + "/dd.bin")) return std::printf("error: dd write failed\n"), 1;
  t[2] = seconds_since(t0);
  t0 = Clock::now();
  if (!dd("if=" + dir + "/dd.bin of=/dev/null")) return std::printf("error: dd read failed\n"), 1;
  t[3] = seconds_since(t0);
  std::printf("%.6f %.6f %.6f %.6f\n", t[0], t[1], t[2], t[3]);
  return 0;
}

void w10_spill() {
  const int n = g_opt.small ? 16 : 64;
  const double mb = static_cast<double>(n) * static_cast<double>(kSpillBlock8M) / 1e6;
  const char* variants[4] = {"spill-write", "spill-read", "dd-write", "dd-read"};
  std::vector<json> rows;
  for (const char* v : variants) rows.push_back(record("W10", v, n));
  auto fail_all = [&](const std::string& why) {
    for (auto& r : rows) {
      r["ok"] = false;
      r["error"] = why;
      emit(r);
    }
  };
  const char* env = std::getenv("DTASK_BENCH_SPILL_DIR");
  std::string tmpl = std::string(env && *env ? env : "/var/tmp") + "/dtask-bench-spill-XXXXXX";
  if (!::mkdtemp(tmpl.data())) return fail_all("cannot make a directory " + tmpl);
  const std::string dir = tmpl;
  const std::string cmd = "'" + g_self_exe + "' --spill-probe '" + dir + "' " + std::to_string(n);
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  double t[4] = {0, 0, 0, 0};
  if (std::sscanf(out.c_str(), "%lf %lf %lf %lf", &t[0], &t[1], &t[2], &t[3]) != 4) {
    return fail_all("the spill probe said: " + (out.empty() ? std::string("nothing") : out));
  }
  for (int i = 0; i < 4; ++i) {
    rows[static_cast<std::size_t>(i)]["wall_s"] = t[i];
    rows[static_cast<std::size_t>(i)]["mb_per_s"] = mb / t[i];
  }
  for (std::size_t i = 0; i < 2; ++i) rows[i]["pct_of_raw"] = 100.0 * t[i + 2] / t[i];
  for (auto& r : rows) emit(r);
}

// ---------------------------------------------------------------------------------------------
// FP: what each fast path is worth. W3's submit-result round trip and W2's map with all of them,
// none, and each one switched off alone (workload "FP", the record's fast_paths names the set).

void fp() {
  const long long rounds = g_opt.small ? 500 : 10000;
  const long long map_n = g_opt.small ? 10000 : 100000;
  const std::vector<std::string> specs = {"all",          "none",          "-push_results", "-hold_task_done",
                                          "-early_start", "-run_on_loop", "-spin_wait"};
  for (const auto& spec : specs) {
    g_fast_paths = dtask::FastPaths::parse(spec);
    w3("FP", rounds);
    w2_case("FP", "map", map_n);
  }
  g_fast_paths = g_opt.fast_paths;
}

// ---------------------------------------------------------------------------------------------

void usage() {
  std::printf(
      "usage: dtask_bench [--workloads W1,...,W11,FP] [--workers N] [--small] [--json PATH] [--insecure]\n"
      "                   [--fast-paths SPEC]  (all, none, or e.g. --fast-paths=-early_start,-run_on_loop;\n"
      "                                         default: DTASK_FAST_PATHS, else all)\n"
      "                   [--case-timeout SECONDS] [--min-free-mb MB]\n"
      "                   [--w2-sizes N,...] [--w8-workers K,...] [--w9-sizes N,...]\n"
      "                   [--w9-variants state,graph] [--sched-log-level LEVEL]\n"
      "Paths (defaults come from the build; override with these or the environment):\n"
      "  --plugin PATH (DTASK_BENCH_PLUGIN)  --scheduler-exe PATH (DTASK_SCHEDULER_EXE)\n"
      "  --worker-exe PATH (DTASK_WORKER_EXE)  --dtask-run PATH (DTASK_RUN_EXE)  --mpi-hello PATH (MPI_HELLO_EXE)\n");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // W6's raw ZeroMQ floor, measured in a process of its own with the malloc settings dtask's
  // workers get (common/hugepages.hpp) and printed as "MB/s best_seconds".
  if (argc == 4 && std::string(argv[1]) == "--spill-probe") {
    dtask::reexec_with_hugepage_malloc(argv);
    return spill_probe(argv[2], std::atoi(argv[3]));
  }
  if (argc == 5 && std::string(argv[1]) == "--raw-zmq-probe") {
    dtask::reexec_with_hugepage_malloc(argv);
    double best = 0;
    double mbs = raw_zmq_mb_per_s(std::strtoull(argv[2], nullptr, 10), std::string(argv[3]) == "1", std::atoi(argv[4]), &best);
    std::printf("%.3f %.6f\n", mbs, best);
    return 0;
  }
  {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    g_self_exe = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string(argv[0]);
  }
  g_opt.workloads = {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "FP"};
  try {
    g_opt.fast_paths = dtask::FastPaths::from_environment();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "dtask_bench: %s\n", e.what());
    return 2;
  }
  g_opt.plugin = env_or("DTASK_BENCH_PLUGIN", BENCH_PLUGIN_PATH);
  g_opt.scheduler_exe = env_or("DTASK_SCHEDULER_EXE", DTASK_SCHEDULER_EXE_PATH);
  g_opt.worker_exe = env_or("DTASK_WORKER_EXE", DTASK_WORKER_EXE_PATH);
  g_opt.dtask_run_exe = env_or("DTASK_RUN_EXE", DTASK_RUN_EXE_PATH);
  g_opt.mpi_hello_exe = env_or("MPI_HELLO_EXE", MPI_HELLO_EXE_PATH);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dtask_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--workloads") g_opt.workloads = split(next());
    else if (a == "--workers") g_opt.workers = std::atoi(next().c_str());
    else if (a == "--small") g_opt.small = true;
    else if (a == "--json") g_opt.json_path = next();
    else if (a == "--insecure") g_opt.secure = false;
    else if (a == "--case-timeout") g_opt.case_timeout_s = std::atof(next().c_str());
    else if (a == "--min-free-mb") g_opt.min_free_mb = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--w9-variants") g_opt.w9_variants = next();
    else if (a == "--sched-log-level") g_opt.sched_log_level = next();
    else if (a == "--fast-paths" || a.rfind("--fast-paths=", 0) == 0) {
      try {
        g_opt.fast_paths = dtask::FastPaths::parse(a == "--fast-paths" ? next() : a.substr(13));
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "dtask_bench: --fast-paths: %s\n", e.what());
        return 2;
      }
    }
    else if (a == "--w2-sizes") {
      for (auto& s : split(next())) g_opt.w2_sizes.push_back(std::atoll(s.c_str()));
    } else if (a == "--w8-workers") {
      for (auto& s : split(next())) g_opt.w8_counts.push_back(std::atoll(s.c_str()));
    } else if (a == "--w9-sizes") {
      for (auto& s : split(next())) g_opt.w9_sizes.push_back(std::atoll(s.c_str()));
    } else if (a == "--plugin") g_opt.plugin = next();
    else if (a == "--scheduler-exe") g_opt.scheduler_exe = next();
    else if (a == "--worker-exe") g_opt.worker_exe = next();
    else if (a == "--dtask-run") g_opt.dtask_run_exe = next();
    else if (a == "--mpi-hello") g_opt.mpi_hello_exe = next();
    else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "dtask_bench: unknown argument %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  for (auto& w : g_opt.workloads) {
    for (auto& ch : w) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  if (g_opt.workers < 2) {
    std::fprintf(stderr, "dtask_bench: --workers must be >= 2 (W6 moves data between two workers)\n");
    return 2;
  }
  for (const auto* p : {&g_opt.plugin, &g_opt.scheduler_exe, &g_opt.worker_exe}) {
    if (p->empty() || ::access(p->c_str(), R_OK) != 0) {
      std::fprintf(stderr, "dtask_bench: missing %s (build first, or pass the path)\n", p->empty() ? "a path" : p->c_str());
      return 2;
    }
  }
  g_fast_paths = g_opt.fast_paths;
  // LocalCluster(processes=true) finds dtask-worker through this variable first.
  ::setenv("DTASK_WORKER_EXE", g_opt.worker_exe.c_str(), 1);
  dtask::log::set_level("error");
  ::signal(SIGTERM, on_signal);
  ::signal(SIGINT, on_signal);
  ::signal(SIGPIPE, SIG_IGN);
  std::thread(watchdog).detach();

  auto t0 = Clock::now();
  for (const auto& w : g_opt.workloads) {
    if (w == "W1") w1();
    else if (w == "W2") w2();
    else if (w == "W3") w3();
    else if (w == "W4") w4();
    else if (w == "W5") w5();
    else if (w == "W6") w6();
    else if (w == "W7") w7();
    else if (w == "W8") w8();
    else if (w == "W9") w9();
    else if (w == "W10") w10();
    else if (w == "W11") w11();
    else if (w == "FP") fp();
    else {
      std::fprintf(stderr, "dtask_bench: unknown workload %s\n", w.c_str());
      return 2;
    }
  }
  std::size_t failed = 0;
  for (const auto& r : g_records) failed += !r["ok"].get<bool>();
  if (g_opt.json_path.empty() == false && g_records.empty()) {
    std::ofstream f(g_opt.json_path);
    f << "[]\n";
  }
  std::printf("dtask total wall=%.1fs records=%zu failed=%zu\n", seconds_since(t0), g_records.size(), failed);
  std::fflush(stdout);
  // Exit without running static destructors: a detached watchdog is still alive.
  ::_exit(failed ? 1 : 0);
}

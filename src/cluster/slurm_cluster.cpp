// dtask::slurm::Cluster: an in-process scheduler, worker jobs submitted with sbatch, tracked with squeue/sacct, cancelled with scancel.
//
// Threads and locks:
// - the scheduler runs on server_thread (as in LocalCluster);
// - poll_thread: every poll_interval one batched squeue (sacct for jobs squeue forgot), then
//   either reconcile() (a fixed size: replace ended jobs, submit up to the target within the site
//   caps) or, in adaptive mode, one step of the adapt policy (cluster/adapt.hpp); and every
//   ~200 ms the scheduler's worker list through `observer` (a Client owned by this thread alone),
//   which also sends the retire requests of jobs chosen to go (the only thread that does) and
//   scancels such a job once its workers have left;
// - act_mu serialises every action that runs a Slurm command (poll tick, scale, close), so the
//   job table and Slurm never disagree about what we asked for;
// - close_mu is held through close(), so the destructor, the user and the signal watcher close once;
// - mu guards the job table, target and failures for short reads (jobs(), wait_for_workers()),
//   never held across a command.
#include <dtask/slurm.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <dtask/client.hpp>

#include "cluster/adapt.hpp"
#include "cluster/install_dirs.hpp"  // generated: DTASK_BINDIR
#include "cluster/job_script.hpp"
#include "cluster/scale_plan.hpp"
#include "cluster/slurm_commands.hpp"
#include "cluster/state_file.hpp"
#include "common/host.hpp"
#include "common/log.hpp"
#include "common/scheduler_file.hpp"
#include "scheduler/scheduler_server.hpp"
#include "transport/transport.hpp"

namespace dtask::slurm {

namespace {
namespace fs = std::filesystem;

std::string default_worker_executable() {
  if (const char* env = std::getenv("DTASK_WORKER_EXE"); env && *env) return fs::absolute(env).string();
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "dtask-worker";
    if (fs::exists(beside)) return beside.string();
  }
  return std::string(DTASK_BINDIR) + "/dtask-worker";
}

std::string new_cluster_id() {
  static std::atomic<int> counter{0};
  return hostname() + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

void make_private_dir(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path)) throw std::runtime_error("slurm::Cluster: cannot create directory " + path);
  ::chmod(path.c_str(), 0700);
}

// Does this worker name belong to job `id`? dtask-worker --name ID, or --nworkers: ID-0..ID-(N-1).
bool worker_of(const std::string& worker_name, const std::string& id) {
  return worker_name == id || (worker_name.size() > id.size() && worker_name.compare(0, id.size(), id) == 0 &&
                               worker_name[id.size()] == '-');
}

struct Job {
  JobInfo info;
  // We asked it to end (scancel, or its workers to retire): its end is not a failure.
  bool cancel_requested = false;
  int live_workers = 0;
  bool leaving = false;  // joined, and every live worker retires on its own (JobView::leaving)
  std::chrono::steady_clock::time_point submitted{};
  // Scale-down of a job whose workers joined: they hand their results over and leave first
  // (Client::retire_workers), then the job is scancelled. retire_sent: the request went out.
  bool retire_sent = false;
  bool scancelled = false;
  std::chrono::steady_clock::time_point retire_sent_at{};
};

// A retiring worker leaves within its drain timeout (30 s, worker/retire.hpp); after this long
// its job is scancelled anyway (scancel's SIGTERM drains it too).
constexpr auto kRetireBound = std::chrono::seconds(40);

// The load the adapt policy reads, as the poll thread last saw it.
struct Load {
  std::vector<WorkerInfo> workers;
  std::size_t tasks_waiting = 0;
  std::size_t tasks_processing = 0;
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// Clusters that SIGINT/SIGTERM close (close_clusters_on_signals).
std::mutex g_registry_mu;
std::set<Cluster*> g_registry;
}  // namespace

struct Cluster::Impl {
  ClusterOptions opt;
  std::string id, dir, scheduler_file, state_path, log_dir, worker_exe, script;
  Security security;
  std::unique_ptr<scheduler::SchedulerServer> server;
  std::thread server_thread;
  std::shared_ptr<spdlog::logger> log;

  std::mutex close_mu;  // held through close()
  std::mutex act_mu;
  mutable std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::vector<Job> jobs;
  int target = 0;
  bool stopped_by_failure = false;  // a job failed before joining: no automatic resubmission until scale()
  std::vector<std::string> failures;
  int submit_failures = 0;  // consecutive; backoff grows with it
  std::chrono::steady_clock::time_point backoff_until{};
  std::chrono::steady_clock::time_point last_squeue{};
  Load load;                                       // the scheduler's view, from poll_workers
  std::optional<cluster::AdaptPolicy> adaptive;    // set: adapt() is on, reconcile() steps aside
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool closing = false, closed = false;
  std::thread poll_thread;

  explicit Impl(ClusterOptions o) : opt(std::move(o)) {
    validate(opt);
    if (!opt.log_level.empty()) {
      if (!log::valid_level(opt.log_level)) throw std::invalid_argument("slurm::Cluster: unknown log level " + opt.log_level);
      log::set_level(opt.log_level);
    }
    if (opt.max_pending_jobs < 1) throw std::invalid_argument("slurm::Cluster: max_pending_jobs must be >= 1");
    if (opt.max_jobs < 0) throw std::invalid_argument("slurm::Cluster: max_jobs must be >= 0");
    id = new_cluster_id();
    log = log::make("slurm-cluster", id);
    std::string shared = opt.shared_directory.empty() ? default_shared_directory() : opt.shared_directory;
    dir = fs::absolute(shared).string() + "/" + id;
    make_private_dir(dir);
    scheduler_file = dir + "/scheduler.json";
    state_path = dir + "/state.json";
    log_dir = opt.log_directory.empty() ? dir + "/logs" : fs::absolute(opt.log_directory).string() + "/" + id;
    worker_exe = opt.worker_executable.empty() ? default_worker_executable() : opt.worker_executable;
    try {
      make_private_dir(log_dir);
      script = slurm::job_script(opt, {scheduler_file, log_dir, worker_exe});
      // The dry run first: a bad account or partition is Slurm's message now, not after a job.
      if (opt.dry_run) {
        std::string refusal = sbatch_test_only(opt.sbatch, script, opt.command_timeout);
        if (!refusal.empty()) throw SlurmError("sbatch --test-only refused the worker job: " + refusal);
      }
      security = Security::generate();  // workers join with these keys only: no unauthenticated path
      scheduler::SchedulerOptions so;
      // Compute nodes must reach it: this host's IPv4 address unless told otherwise.
      so.host = opt.scheduler_host.empty() ? transport::default_host() : opt.scheduler_host;
      so.interface = opt.scheduler_interface;
      so.security = security;
      so.where = "slurm:" + id;
      so.dashboard_address = opt.dashboard_address;
      so.report_path = opt.report;
      so.config.fast_paths = opt.fast_paths;
      so.config.allowed_failures = opt.allowed_failures;
      server = std::make_unique<scheduler::SchedulerServer>(so);
      server_thread = std::thread([this] { server->run(); });
      write_scheduler_file(scheduler_file, server->address(), security, id, server->dashboard_link());
      save_state();
      poll_thread = std::thread([this] { poll_loop(); });
    } catch (...) {
      close();
      throw;
    }
  }

  ConnectOptions connect() const {
    if (!server) throw std::logic_error("slurm::Cluster: closed");
    ConnectOptions c;
    c.address = server->address();
    c.security = security;
    c.fast_paths = opt.fast_paths;
    return c;
  }

  std::string log_file_of(const std::string& job) const { return log_dir + "/" + opt.job_name + "-" + job + ".out"; }

  // Caller holds act_mu (the table's writers all do); takes mu for the copy.
  void save_state() {
    StateFile s;
    s.id = id;
    s.host = hostname();
    s.pid = ::getpid();
    s.scheduler_file = scheduler_file;
    s.log_directory = log_dir;
    s.squeue = opt.squeue;
    s.scancel = opt.scancel;
    {
      std::lock_guard lk(mu);
      for (const auto& j : jobs)
        if (!j.info.ended) s.jobs.push_back(j.info.id);
    }
    try {
      write_state_file(state_path, s);
    } catch (const std::exception& e) {
      log->error("{}", e.what());
    }
  }

  // Caller holds act_mu. Submits one job; on failure records it and backs off.
  bool submit_one(std::string* error) {
    auto r = sbatch_submit(opt.sbatch, script, opt.command_timeout);
    std::lock_guard lk(mu);
    if (!r.ok()) {
      ++submit_failures;
      auto wait = opt.poll_interval * (1 << std::min(submit_failures, 6));
      backoff_until = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(wait, std::chrono::minutes(5));
      std::string msg = "sbatch failed: " + r.error;
      log->error("{}", msg);
      if (error) *error = msg;
      return false;
    }
    submit_failures = 0;
    Job j;
    j.info.id = r.id;
    j.info.state = "PENDING";
    j.info.log_file = log_file_of(r.id);
    j.submitted = std::chrono::steady_clock::now();
    jobs.push_back(j);
    log->info("submitted job {} (log {})", r.id, j.info.log_file);
    return true;
  }

  // Caller holds mu. Marks the jobs as going; returns those to scancel now: pending ones and
  // running ones none of whose workers is here (nothing to hand over). A job whose workers joined
  // is retired instead (retire_joined_jobs, on the poll thread): results first, scancel after.
  std::vector<std::string> let_go(const std::vector<std::string>& ids) {
    std::vector<std::string> now;
    for (auto& j : jobs) {
      if (std::find(ids.begin(), ids.end(), j.info.id) == ids.end() || j.info.ended) continue;
      j.cancel_requested = true;
      if (j.live_workers > 0) {
        j.info.retired = true;
      } else {
        j.scancelled = true;
        now.push_back(j.info.id);
      }
    }
    return now;
  }

  // Caller holds act_mu (a Slurm command), not mu.
  void scancel(const std::vector<std::string>& ids) {
    if (ids.empty()) return;
    auto r = run_command(scancel_argv(opt.scancel, ids), "", opt.command_timeout);
    if (!r.ok()) log->warn("scancel failed: {}", r.message());
  }

  // Caller holds act_mu. Brings the number of live jobs to the target: submits (within
  // max_pending_jobs and max_jobs), or cancels pending jobs first, then the newest running ones.
  // Returns the first sbatch error, if any.
  std::string reconcile() {
    std::vector<std::string> to_cancel;
    int to_submit = 0;
    {
      std::lock_guard lk(mu);
      if (closing || adaptive) return {};
      std::vector<JobView> view;
      for (const auto& j : jobs)
        view.push_back({j.info.id, j.info.state == "PENDING", j.info.ended, j.cancel_requested, j.leaving});
      bool hold = stopped_by_failure || std::chrono::steady_clock::now() < backoff_until;
      auto plan = plan_scale(view, target, {opt.max_pending_jobs, opt.max_jobs}, hold);
      to_submit = plan.submit;
      to_cancel = let_go(plan.cancel);
    }
    scancel(to_cancel);
    std::string first_error;
    for (int i = 0; i < to_submit; ++i) {
      std::string err;
      if (!submit_one(&err)) {
        first_error = err;
        break;
      }
    }
    if (to_submit > 0 || !to_cancel.empty()) save_state();
    return first_error;
  }

  // Caller holds act_mu. One batched squeue for every live job; sacct for those it no longer lists.
  void poll_slurm() {
    std::vector<std::string> ids;
    {
      std::lock_guard lk(mu);
      for (const auto& j : jobs)
        if (!j.info.ended) ids.push_back(j.info.id);
    }
    if (ids.empty()) return;
    auto q = run_command(squeue_argv(opt.squeue, ids), "", opt.command_timeout);
    if (!q.ok()) {
      log->warn("squeue failed (will retry): {}", q.message());
      return;
    }
    auto listed = parse_squeue(q.out);
    std::vector<std::string> gone;
    for (const auto& i : ids)
      if (!listed.count(i)) gone.push_back(i);
    std::map<std::string, std::string> final_states;
    if (!gone.empty()) {
      auto a = run_command(sacct_argv(opt.sacct, gone), "", opt.command_timeout);
      if (a.ok()) final_states = parse_sacct(a.out);
    }
    bool changed = false;
    std::lock_guard lk(mu);
    for (auto& j : jobs) {
      if (j.info.ended) continue;
      if (auto it = listed.find(j.info.id); it != listed.end()) {
        j.info.state = it->second.state;
        j.info.reason = it->second.state == "PENDING" ? it->second.reason : "";
        if (!is_final_state(j.info.state)) continue;
      } else if (auto f = final_states.find(j.info.id); f != final_states.end()) {
        j.info.state = f->second;
      } else {
        j.info.state = "GONE";  // neither squeue nor sacct knows it (accounting off)
      }
      if (!is_final_state(j.info.state) && j.info.state != "GONE") continue;
      j.info.ended = true;
      j.info.reason.clear();
      changed = true;
      auto end = classify_end(j.cancel_requested, j.info.workers_joined);
      if (end == JobEnd::cancelled_by_us) {
        log->info("job {} ended ({}) after we cancelled it", j.info.id, j.info.state);
      } else if (end == JobEnd::failed_to_join) {
        std::string msg = "slurm job " + j.info.id + " ended (" + j.info.state +
                          ") before any of its workers joined the scheduler; see its log " + j.info.log_file +
                          " (and " + log_dir + "/" + opt.job_name + "-" + j.info.id + ".err)";
        log->error("{}", msg);
        failures.push_back(msg);
        stopped_by_failure = true;  // no resubmission loop (dask-jobqueue#620): scale() again to retry
      } else {
        log->info("job {} ended ({}); replacing it while the cluster is scaled", j.info.id, j.info.state);
      }
    }
    if (changed) cv.notify_all();
  }

  // Caller: the poll thread only (observer is its own).
  void poll_workers(std::unique_ptr<Client>& observer) {
    try {
      if (!observer) {
        ConnectOptions c = connect();
        c.name = "slurm-cluster-observer";
        observer = std::make_unique<Client>(c);
      }
      auto info = observer->scheduler_info();
      std::lock_guard lk(mu);
      load.workers = info.workers;
      load.tasks_waiting = 0;
      load.tasks_processing = 0;
      for (const auto& [state, n] : info.tasks_by_state) {
        if (state == "waiting" || state == "queued") load.tasks_waiting += n;
        if (state == "processing") load.tasks_processing += n;
      }
      for (auto& j : jobs) {
        int live = 0, retiring = 0;
        for (const auto& w : info.workers) {
          if (!worker_of(w.name, j.info.id)) continue;
          ++live;
          retiring += w.retiring ? 1 : 0;
        }
        j.live_workers = live;
        // Sticky: retiring cannot be undone, and the job stays on its way out while its workers
        // go (live falls to 0 before Slurm reports the end). A job whose workers are all gone
        // for a while (a crash, being restarted by dtask-worker) is not leaving.
        if (!j.leaving && !j.cancel_requested && !j.info.ended && live > 0 && retiring == live) {
          j.leaving = true;
          log->info("job {}: its workers are leaving on their own (--lifetime or a signal); it is replaced now", j.info.id);
        }
        j.info.workers_joined = std::max(j.info.workers_joined, live);
        // Its workers are here, so it runs, whatever the last squeue (up to poll_interval ago) said.
        if (live > 0 && j.info.state == "PENDING") {
          j.info.state = "RUNNING";
          j.info.reason.clear();
        }
      }
      cv.notify_all();
    } catch (const std::exception& e) {
      log->warn("cannot read the scheduler's workers: {}", e.what());
      observer.reset();
    }
  }

  // Poll thread only (observer is its own). Jobs chosen to go whose workers joined: ask those
  // workers to retire (results handed over, exit 0); once none is left, or after kRetireBound,
  // scancel the job (its batch script may have more to do; its end is ours either way).
  void retire_joined_jobs(std::unique_ptr<Client>& observer) {
    std::vector<std::string> names, ids;
    std::vector<std::string> to_scancel;
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lk(mu);
      for (auto& j : jobs) {
        if (!j.info.retired || j.info.ended || j.scancelled) continue;
        if (!j.retire_sent) {
          for (const auto& w : load.workers)
            if (worker_of(w.name, j.info.id)) names.push_back(w.name);
          ids.push_back(j.info.id);
          j.retire_sent = true;
          j.retire_sent_at = now;
        } else if (j.live_workers == 0 || now - j.retire_sent_at > kRetireBound) {
          j.scancelled = true;
          to_scancel.push_back(j.info.id);
        }
      }
    }
    if (!names.empty() && observer) {
      try {
        // Asks and returns: the poll goes on while they hand over; live_workers says when they left.
        (void)observer->retire_workers(names, std::chrono::milliseconds(0));
        log->info("retiring the workers of job(s) {}: {}", join(ids), join(names));
      } catch (const std::exception& e) {
        log->warn("cannot ask workers {} to retire: {}", join(names), e.what());
      }
    }
    if (!to_scancel.empty()) {
      std::lock_guard act(act_mu);
      scancel(to_scancel);
      save_state();
    }
  }

  // Caller holds act_mu (poll thread). One step of the adapt policy over the jobs not going and the
  // scheduler's last view; applies its decision: submit (unless held after a failure or backing
  // off), cancel pending jobs, retire whole jobs (retire_joined_jobs finishes them).
  void adapt_step() {
    cluster::AdaptSnapshot snap;
    cluster::AdaptDecision d;
    std::vector<std::string> to_scancel;
    bool hold = false;
    {
      std::lock_guard lk(mu);
      if (closing || !adaptive) return;
      auto ms = [this](std::chrono::steady_clock::time_point t) {
        return static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(t - started).count());
      };
      snap.now_ms = ms(std::chrono::steady_clock::now());
      snap.tasks_waiting = load.tasks_waiting;
      snap.tasks_processing = load.tasks_processing;
      for (const auto& j : jobs) {
        if (j.info.ended || j.cancel_requested) continue;
        snap.jobs.push_back({j.info.id, j.info.state != "PENDING", ms(j.submitted)});
      }
      for (const auto& w : load.workers) {
        cluster::AdaptWorker aw{w.name, "", w.processing, w.nbytes, w.idle_ms, w.retiring};
        for (const auto& j : jobs) {
          if (!worker_of(w.name, j.info.id)) continue;
          // A job we let go: its workers are leaving, even before the scheduler has heard so.
          if (j.cancel_requested) aw.retiring = true;
          else if (!j.info.ended) aw.job = j.info.id;
        }
        snap.workers.push_back(std::move(aw));
      }
      d = adaptive->step(snap);
      hold = stopped_by_failure || std::chrono::steady_clock::now() < backoff_until;
      // The policy names workers; a job goes when all of its workers do (groups_to_close).
      std::vector<std::string> going = d.cancel_jobs;
      for (const auto& w : d.retire_workers)
        for (const auto& j : snap.jobs)
          if (worker_of(w, j.id) && std::find(going.begin(), going.end(), j.id) == going.end()) going.push_back(j.id);
      to_scancel = let_go(going);
    }
    if (!d.why.empty()) log->info("adapt: {}", d.why);
    scancel(to_scancel);
    std::size_t submitted = 0;
    if (!hold) {
      for (; submitted < d.submit_jobs; ++submitted)
        if (!submit_one(nullptr)) break;
    }
    if (submitted > 0 || !d.cancel_jobs.empty() || !d.retire_workers.empty()) save_state();
  }

  void poll_loop() {
    std::unique_ptr<Client> observer;
    auto worker_tick = std::min<std::chrono::milliseconds>(opt.poll_interval, std::chrono::milliseconds(200));
    while (true) {
      {
        std::unique_lock lk(mu);
        cv.wait_for(lk, worker_tick, [this] { return closing; });
        if (closing) break;
      }
      poll_workers(observer);
      retire_joined_jobs(observer);
      if (std::chrono::steady_clock::now() - last_squeue >= opt.poll_interval) {
        std::lock_guard act(act_mu);
        {
          std::lock_guard lk(mu);  // closing is guarded by mu, not act_mu
          if (closing) break;
        }
        poll_slurm();
        reconcile();
        adapt_step();
        save_state();
        last_squeue = std::chrono::steady_clock::now();
      }
    }
    observer.reset();
  }

  void scale(int n) {
    if (n < 0) throw std::invalid_argument("slurm::Cluster: cannot scale to a negative number of jobs");
    std::lock_guard act(act_mu);
    {
      std::lock_guard lk(mu);
      if (closing) throw std::logic_error("slurm::Cluster: scale() after close()");
      adaptive.reset();  // Dask: scale() ends adapt()
      target = n;
      stopped_by_failure = false;
      backoff_until = {};
    }
    std::string err = reconcile();
    if (!err.empty()) throw SlurmError(err);
  }

  void start_adapting(int minimum_jobs, int maximum_jobs, const AdaptSettings& settings) {
    cluster::AdaptOptions a;
    a.unit = cluster::AdaptOptions::Unit::jobs;
    a.minimum = static_cast<std::size_t>(minimum_jobs);
    a.maximum = static_cast<std::size_t>(maximum_jobs);
    a.workers_per_job = static_cast<std::size_t>(opt.processes);
    a.threads_per_worker = static_cast<std::size_t>(std::max(1, opt.cores / opt.processes));
    a.tasks_per_thread = settings.tasks_per_thread;
    a.target_duration_ms = static_cast<std::uint64_t>(settings.target_duration.count());
    a.max_pending_jobs = static_cast<std::size_t>(opt.max_pending_jobs);
    a.scale_down_wait_ms = static_cast<std::uint64_t>(settings.scale_down_wait.count());
    a.cooldown_ms = static_cast<std::uint64_t>(settings.cooldown.count());
    std::lock_guard act(act_mu);
    {
      std::lock_guard lk(mu);
      if (closing) throw std::logic_error("slurm::Cluster: adapt() after close()");
      adaptive.emplace(a);
      stopped_by_failure = false;
      backoff_until = {};
    }
    adapt_step();  // the minimum at once; the rest follows the load, one step per poll
    save_state();
  }

  bool wait_for_workers(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (!failures.empty()) throw JobFailedError(failures.front());
      int live = 0;
      for (const auto& j : jobs) live += j.live_workers;
      if (live >= n) return true;
      if (closing) return false;
      if (cv.wait_until(lk, deadline) == std::cv_status::timeout) {
        if (!failures.empty()) throw JobFailedError(failures.front());
        live = 0;
        for (const auto& j : jobs) live += j.live_workers;
        return live >= n;
      }
    }
  }

  void close() {
    // One close at a time (the destructor, the user, the signal watcher): a second waits for the
    // first and finds it done.
    std::lock_guard closing_now(close_mu);
    {
      std::lock_guard lk(mu);
      if (closed) return;
      closing = true;
    }
    cv.notify_all();
    if (poll_thread.joinable() && poll_thread.get_id() != std::this_thread::get_id()) poll_thread.join();
    std::lock_guard act(act_mu);
    // The scheduler first: it tells its workers to leave, so most jobs end on their own.
    if (server) server->stop(0);
    if (server_thread.joinable()) server_thread.join();
    std::vector<std::string> live;
    {
      std::lock_guard lk(mu);
      for (auto& j : jobs)
        if (!j.info.ended) {
          live.push_back(j.info.id);
          j.cancel_requested = true;
        }
    }
    bool all_gone = true;
    if (!live.empty()) {
      // Wait until Slurm forgets them (or lists them as finished): no orphaned jobs.
      auto step = std::min<std::chrono::milliseconds>(opt.poll_interval, std::chrono::milliseconds(250));
      auto r = cancel_and_wait(opt.scancel, opt.squeue, live, opt.close_timeout, step, opt.command_timeout);
      if (!r.scancel_error.empty()) log->warn("scancel failed: {}", r.scancel_error);
      all_gone = r.gone;
      if (!all_gone) {
        log->error("close(): Slurm still lists jobs of cluster {} after {} ms; `dtask-cluster cancel {}` retries", id,
                   opt.close_timeout.count(), id);
      }
    }
    std::error_code ec;
    fs::remove(scheduler_file, ec);
    if (all_gone) {
      fs::remove(state_path, ec);
      bool keep_logs;
      {
        std::lock_guard lk(mu);
        for (auto& j : jobs) j.info.ended = true;
        keep_logs = !failures.empty();
      }
      if (keep_logs) {
        log->warn("close(): keeping the logs of cluster {} in {} (a job failed)", id, log_dir);
      } else if (!opt.log_directory.empty()) {
        fs::remove_all(dir, ec);  // logs the user asked for stay where they asked
      } else {
        fs::remove_all(log_dir, ec);
        fs::remove_all(dir, ec);
      }
      if (!dir.empty() && fs::exists(dir) && fs::is_empty(dir, ec)) fs::remove(dir, ec);
    } else {
      save_state();
    }
    server.reset();
    security = Security::none();  // the keys leave memory with the files
    std::lock_guard lk(mu);
    closed = true;
  }
};

Cluster::Cluster(ClusterOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  std::lock_guard lk(g_registry_mu);
  g_registry.insert(this);
}
Cluster::~Cluster() {
  try {
    close();
  } catch (...) {
  }
  std::lock_guard lk(g_registry_mu);
  g_registry.erase(this);
}
std::string Cluster::job_script() const { return impl_->script; }
void Cluster::scale_jobs(int n) { impl_->scale(n); }
void Cluster::scale_workers(int n) {
  if (n < 0) throw std::invalid_argument("slurm::Cluster: cannot scale to a negative number of workers");
  impl_->scale((n + impl_->opt.processes - 1) / impl_->opt.processes);
}
void Cluster::adapt(int minimum_jobs, int maximum_jobs, const AdaptSettings& settings) {
  if (minimum_jobs < 0 || maximum_jobs < minimum_jobs || maximum_jobs < 1)
    throw std::invalid_argument("slurm::Cluster: adapt needs 0 <= minimum <= maximum and maximum >= 1");
  if (settings.tasks_per_thread <= 0 || settings.target_duration.count() < 0 || settings.scale_down_wait.count() < 0 ||
      settings.cooldown.count() < 0)
    throw std::invalid_argument("slurm::Cluster: adapt settings must be positive");
  impl_->start_adapting(minimum_jobs, maximum_jobs, settings);
}
bool Cluster::wait_for_workers(int n, std::chrono::milliseconds timeout) { return impl_->wait_for_workers(n, timeout); }
std::vector<JobInfo> Cluster::jobs() const {
  std::lock_guard lk(impl_->mu);
  std::vector<JobInfo> out;
  for (const auto& j : impl_->jobs) out.push_back(j.info);
  return out;
}
std::vector<std::string> Cluster::failures() const {
  std::lock_guard lk(impl_->mu);
  return impl_->failures;
}
const std::string& Cluster::id() const { return impl_->id; }
const std::string& Cluster::scheduler_file() const { return impl_->scheduler_file; }
const std::string& Cluster::dashboard_link() const {
  if (!impl_->server) throw std::logic_error("slurm::Cluster: closed");
  return impl_->server->dashboard_link();
}
const std::string& Cluster::scheduler_address() const {
  if (!impl_->server) throw std::logic_error("slurm::Cluster: closed");
  return impl_->server->address();
}
ConnectOptions Cluster::connect_options() const { return impl_->connect(); }
const ClusterOptions& Cluster::options() const { return impl_->opt; }
void Cluster::close() { impl_->close(); }

namespace {
int g_signal_pipe[2] = {-1, -1};
void on_signal(int sig) {
  unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &b, 1);
}
}  // namespace

void close_clusters_on_signals() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) throw std::runtime_error("close_clusters_on_signals: pipe failed");
    // The handler only writes a byte; this thread does the work a handler must not (locks, fork, waits).
    std::thread([] {
      unsigned char b = 0;
      while (::read(g_signal_pipe[0], &b, 1) != 1) {
      }
      {
        std::lock_guard lk(g_registry_mu);
        for (Cluster* c : g_registry) {
          try {
            c->close();
          } catch (...) {
          }
        }
      }
      ::signal(b, SIG_DFL);
      ::raise(b);
    }).detach();
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
  });
}

}  // namespace dtask::slurm

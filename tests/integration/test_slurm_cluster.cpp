// slurm::Cluster against fake sbatch/squeue/scancel/sacct (shell scripts that start dtask-worker locally): scale, run, fail, close.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <dtask/dtask.hpp>
#include <dtask/slurm.hpp>

#include "test_tasks.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void write_exe(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  ::chmod(p.c_str(), 0700);
}

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int count_lines(const fs::path& p, const std::string& word) {
  std::ifstream f(p);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) n += line == word ? 1 : 0;
  return n;
}

// A fake Slurm in a temp directory. sbatch runs the script in its own session (SLURM_JOB_ID set,
// -o/-e honoured with %j), squeue lists jobs whose processes live, scancel sends SIGTERM to the
// job's process group, sacct reports how jobs ended. Every call is appended to `calls`.
struct FakeSlurm {
  fs::path dir;
  FakeSlurm() {
    char tmpl[] = "/tmp/dtask-fake-slurm-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    dir = tmpl;
    fs::create_directories(dir / "jobs");
    const std::string d = dir.string();
    write_exe(dir / "sbatch", R"SH(#!/bin/bash
F=)SH" + d + R"SH(
if [ "$1" = --test-only ]; then
  echo test-only >> $F/calls; cat > /dev/null
  if [ -f $F/refuse ]; then cat $F/refuse >&2; exit 1; fi
  echo "sbatch: Job 1 to start at 2026-01-01T00:00:00 using 1 processors on nodes n1 in partition debug" >&2; exit 0
fi
echo sbatch >> $F/calls
if [ -f $F/sbatch_fails ]; then cat > /dev/null; cat $F/sbatch_fails >&2; exit 1; fi
id=$(( $(cat $F/next 2>/dev/null || echo 1000) + 1 )); echo $id > $F/next
J=$F/jobs/$id; mkdir -p $J; cat > $J/script
out=$(sed -n 's/^#SBATCH -o //p' $J/script | sed "s/%j/$id/g"); err=$(sed -n 's/^#SBATCH -e //p' $J/script | sed "s/%j/$id/g")
# While $F/hold exists, new jobs pend (reason Priority), as on a busy cluster.
if [ -f $F/hold ]; then echo PENDING > $J/state; else echo RUNNING > $J/state; fi
SLURM_JOB_ID=$id setsid bash -c '
  trap ":" TERM
  while [ -f "$3/hold" ] && [ ! -f "$0/cancelled" ]; do sleep 0.05; done
  if [ -f "$0/cancelled" ]; then echo CANCELLED > "$0/state"; exit 0; fi
  echo RUNNING > "$0/state"
  bash "$0/script" > "$1" 2> "$2"; rc=$?
  # Like slurmd: the job lasts until every process of it is gone.
  while pgrep -g $$ > "$0/procs"; grep -qv "^$$\$" "$0/procs"; do sleep 0.05; done
  if [ -f "$0/cancelled" ]; then echo CANCELLED; elif [ -f "$0/timeout" ]; then echo TIMEOUT;
  elif [ $rc = 0 ]; then echo COMPLETED; else echo FAILED; fi > "$0/state"
' $J "$out" "$err" $F < /dev/null > /dev/null 2>&1 &
echo $! > $J/pgid
echo "$id;fake"
)SH");
    write_exe(dir / "squeue", R"SH(#!/bin/bash
F=)SH" + d + R"SH(
echo squeue >> $F/calls
ids=$(echo "$1" | sed 's/^--jobs=//' | tr , ' ')
for id in $ids; do
  s=$(cat $F/jobs/$id/state 2>/dev/null) || continue
  case $s in RUNNING|COMPLETING) echo "$id $s None";; PENDING) echo "$id $s Priority";; esac
done
)SH");
    write_exe(dir / "sacct", R"SH(#!/bin/bash
F=)SH" + d + R"SH(
echo sacct >> $F/calls
for id in $(echo "$2" | tr , ' '); do
  s=$(cat $F/jobs/$id/state 2>/dev/null) && echo "$id|$s"
done
)SH");
    write_exe(dir / "scancel", R"SH(#!/bin/bash
F=)SH" + d + R"SH(
echo scancel >> $F/calls
for id in "$@"; do
  J=$F/jobs/$id; [ -d $J ] || continue
  s=$(cat $J/state)
  # The job's own wrapper records the end (CANCELLED once its processes are gone): writing the
  # state here would race with a job that is ending by itself.
  case $s in RUNNING|PENDING) touch $J/cancelled; kill -TERM -$(cat $J/pgid) 2>/dev/null;; esac
done
)SH");
    // dtask-worker with --nworkers: the real one once it has the option, else N copies named NAME-i.
    const char* real = std::getenv("DTASK_WORKER_EXE");
    REQUIRE(real);
    write_exe(dir / "dtask-worker", std::string("#!/bin/bash\nREAL=") + real + R"SH(
if "$REAL" --help 2>&1 | grep -q -- --nworkers; then exec "$REAL" "$@"; fi
n=1; name=; args=()
while [ $# -gt 0 ]; do
  case $1 in --nworkers) n=$2; shift 2;; --name) name=$2; shift 2;; *) args+=("$1"); shift;; esac
done
pids=()
for ((i = 0; i < n; i++)); do "$REAL" "${args[@]}" --name "$name-$i" & pids+=($!); done
trap 'kill -TERM ${pids[@]} 2>/dev/null' TERM INT
code=0
for p in ${pids[@]}; do wait $p; c=$?; [ $code = 0 ] && code=$c; done
exit $code
)SH");
  }
  ~FakeSlurm() {
    // Whatever a failed test left running.
    for (const auto& j : fs::directory_iterator(dir / "jobs")) {
      std::string pgid = read(j.path() / "pgid");
      if (!pgid.empty()) ::kill(-std::stoi(pgid), SIGKILL);
    }
    std::error_code ec;
    if (!std::getenv("DTASK_TEST_KEEP")) fs::remove_all(dir, ec);  // kept for a post-mortem
  }
  dtask::slurm::ClusterOptions options() const {
    dtask::slurm::ClusterOptions o;
    o.cores = 2;
    o.processes = 2;
    o.memory = "2GB";
    o.walltime = "00:10:00";
    o.plugin = TEST_PLUGIN_PATH;
    o.scheduler_host = "127.0.0.1";
    o.shared_directory = (dir / "shared").string();
    o.worker_executable = (dir / "dtask-worker").string();
    o.sbatch = (dir / "sbatch").string();
    o.squeue = (dir / "squeue").string();
    o.scancel = (dir / "scancel").string();
    o.sacct = (dir / "sacct").string();
    o.poll_interval = 200ms;
    o.close_timeout = 30s;
    if (const char* l = std::getenv("DTASK_TEST_LOG_LEVEL")) o.log_level = l;
    return o;
  }
  // Walltime: the job's processes get SIGTERM and the job ends as TIMEOUT.
  void time_out(const std::string& id) const {
    fs::path j = dir / "jobs" / id;
    std::ofstream(j / "timeout") << "";
    ::kill(-std::stoi(read(j / "pgid")), SIGTERM);
  }
  int calls(const std::string& what) const { return count_lines(dir / "calls", what); }
  // Each job's state and the calls made, for a failure's message.
  std::string describe() const {
    std::string out = "calls: " + read(dir / "calls") + "jobs:";
    for (const auto& j : fs::directory_iterator(dir / "jobs")) {
      out += " " + j.path().filename().string() + "=" + read(j.path() / "state");
      if (fs::exists(j.path() / "cancelled")) out += "(cancelled)";
      out += " procs[" + read(j.path() / "procs") + "]";
    }
    return out;
  }
  // Jobs whose processes still run.
  int live_jobs() const {
    int n = 0;
    for (const auto& j : fs::directory_iterator(dir / "jobs")) {
      std::string s = read(j.path() / "state");
      n += (s.rfind("RUNNING", 0) == 0 || s.rfind("COMPLETING", 0) == 0) ? 1 : 0;
    }
    return n;
  }
};

bool empty_dir(const fs::path& p) {
  std::error_code ec;
  return !fs::exists(p) || fs::is_empty(p, ec);
}

}  // namespace

TEST_CASE("slurm_cluster.seed_example_scale_run_close") {
  FakeSlurm slurm;
  std::string shared;
  {
    dtask::slurm::Cluster cluster(slurm.options());
    shared = cluster.options().shared_directory;
    CHECK(slurm.calls("test-only") == 1);
    CHECK(slurm.calls("sbatch") == 0);  // nothing runs before scale()
    // The scheduler file holds the keys: 0600.
    struct stat st {};
    REQUIRE(::stat(cluster.scheduler_file().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    dtask::Client client(cluster);
    // The dashboard (issue 16): served by default, its link (with the token) in the 0600 file.
    CHECK(cluster.dashboard_link().rfind("http://", 0) == 0);
    CHECK(cluster.dashboard_link().find("/status?token=") != std::string::npos);
    CHECK(client.dashboard_link() == cluster.dashboard_link());
    CHECK(read(cluster.scheduler_file()).find(cluster.dashboard_link()) != std::string::npos);
    cluster.scale_jobs(2);
    CHECK(slurm.calls("sbatch") == 2);
    REQUIRE(cluster.wait_for_workers(4, 60s));  // 2 jobs x 2 processes
    auto jobs = cluster.jobs();
    REQUIRE(jobs.size() == 2);
    for (const auto& j : jobs) {
      CHECK(j.state == "RUNNING");
      CHECK(j.workers_joined == 2);
      CHECK(j.log_file.find(j.id) != std::string::npos);  // the job id in the log's name
    }
    CHECK(client.scheduler_info().workers.size() == 4);
    // The state file (what `dtask-cluster cancel` reads after a kill -9) lists both jobs, 0600.
    fs::path state = fs::path(cluster.scheduler_file()).parent_path() / "state.json";
    REQUIRE(::stat(state.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    std::string state_text = read(state);
    for (const auto& j : jobs) CHECK(state_text.find("\"" + j.id + "\"") != std::string::npos);
    // The seed: 2,000 sequential submits, each returning the host name.
    std::map<std::string, int> counter;
    for (int i = 0; i < 2000; ++i) ++counter[client.submit(::hostname, i).result()];
    REQUIRE(counter.size() == 1);
    CHECK(counter.begin()->second == 2000);
    CHECK(cluster.job_script().find("--nworkers 2 --nthreads 1 --memory-limit 1000000000") != std::string::npos);
    client.close();
    cluster.close();
    CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());   // every job gone from Slurm
    CHECK(cluster.failures().empty());
  }
  CHECK(empty_dir(shared));  // no scheduler file, state file, keys or logs left
}

// Scale-down while results are held: the job that goes hands its workers' results over first
// (each value is the pid of the process that computed it, so a recomputed one would differ), its
// end is no failure, and the destructor (as when the program throws) cancels the rest.
TEST_CASE("slurm_cluster.scale_down_keeps_results_and_destructor_cancels") {
  FakeSlurm slurm;
  std::string shared;
  {
    dtask::slurm::Cluster cluster(slurm.options());
    shared = cluster.options().shared_directory;
    cluster.scale_workers(3);  // rounded up to 2 jobs of 2
    REQUIRE(cluster.wait_for_workers(4, 60s));
    dtask::Client client(cluster);
    std::vector<int> xs(200);
    for (int i = 0; i < 200; ++i) xs[static_cast<std::size_t>(i)] = i;
    auto futures = client.map(pid, xs);
    auto computed_by = client.gather(futures);
    cluster.scale_jobs(1);
    // One job goes: its two workers retire, then the job ends (not as a failure).
    bool one_left = false;
    for (int i = 0; i < 600 && !one_left; ++i) {
      int ended = 0;
      for (const auto& j : cluster.jobs()) ended += (j.ended && j.retired) ? 1 : 0;
      one_left = ended == 1 && client.scheduler_info().workers.size() == 2;
      if (!one_left) std::this_thread::sleep_for(100ms);
    }
    REQUIRE_MESSAGE(one_left, slurm.describe());
    CHECK(cluster.failures().empty());
    std::vector<dtask::Future<long long>> again;
    for (auto& f : futures) again.push_back(client.submit(add64, f, 0LL));
    CHECK(client.gather(again) == computed_by);  // nothing lost, nothing recomputed
    CHECK(slurm.calls("sbatch") == 2);           // the job that went is not replaced
    client.close();
  }
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
  CHECK(empty_dir(shared));
}

// adapt(0, 4): nothing runs while idle; a backlog of 200 tasks of 50 ms brings jobs (never more
// than the maximum, no submit/cancel loop); once idle past scale_down_wait the cluster shrinks to
// one job, which holds the results the others handed over; once the client releases them, to the
// minimum. Every job retired (not failed), nothing recomputed or resubmitted.
TEST_CASE("slurm_cluster.adapt_grows_with_the_backlog_and_shrinks_when_idle") {
  FakeSlurm slurm;
  dtask::slurm::Cluster cluster(slurm.options());
  dtask::slurm::AdaptSettings a;
  a.scale_down_wait = 1s;
  a.cooldown = 1s;
  cluster.adapt(0, 4, a);
  std::this_thread::sleep_for(1s);
  CHECK(slurm.calls("sbatch") == 0);  // minimum 0, no load: no job
  dtask::Client client(cluster);
  std::vector<dtask::Future<int>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(client.submit(slow_inc, i, 50));
  auto values = client.gather(fs);
  for (int i = 0; i < 200; ++i) REQUIRE(values[static_cast<std::size_t>(i)] == i + 1);
  const int submitted = slurm.calls("sbatch");
  CHECK(submitted >= 1);
  CHECK(submitted <= 4);
  // Idle, but the results are still held: the others hand theirs to one job, which stays.
  auto alive_jobs = [&] {
    int alive = 0;
    for (const auto& j : cluster.jobs()) alive += j.ended ? 0 : 1;
    return alive;
  };
  bool one_left = false;
  for (int i = 0; i < 600 && !one_left; ++i) {
    one_left = alive_jobs() == 1;
    if (!one_left) std::this_thread::sleep_for(100ms);
  }
  REQUIRE_MESSAGE(one_left, slurm.describe());
  std::this_thread::sleep_for(2s);  // past scale_down_wait: it still stays
  CHECK(alive_jobs() == 1);
  for (int i = 0; i < 200; ++i) CHECK(fs[static_cast<std::size_t>(i)].result() == i + 1);
  CHECK(slurm.calls("sbatch") == submitted);  // nothing was lost, so nothing ran again
  fs.clear();  // released: now the last job may go too
  bool shrunk = false;
  for (int i = 0; i < 600 && !shrunk; ++i) {
    shrunk = alive_jobs() == 0;
    if (!shrunk) std::this_thread::sleep_for(100ms);
  }
  REQUIRE_MESSAGE(shrunk, slurm.describe());
  for (const auto& j : cluster.jobs()) CHECK(j.retired);
  CHECK(cluster.failures().empty());
  CHECK(slurm.calls("sbatch") == submitted);  // idle: nothing resubmitted
  CHECK(slurm.calls("scancel") <= submitted);
  CHECK(slurm.live_jobs() == 0);
  // The load comes back: so do the jobs.
  CHECK(client.submit(slow_inc, 1, 10).result() == 2);
  CHECK(slurm.calls("sbatch") > submitted);
  client.close();
  cluster.close();
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
}

// adapt(1, 2): the minimum is held at once, and a job that ends (walltime) is replaced.
TEST_CASE("slurm_cluster.adapt_holds_the_minimum_and_replaces_an_ended_job") {
  FakeSlurm slurm;
  dtask::slurm::Cluster cluster(slurm.options());
  cluster.adapt(1, 2);
  CHECK(slurm.calls("sbatch") == 1);
  REQUIRE(cluster.wait_for_workers(2, 60s));
  std::string first = cluster.jobs().at(0).id;
  slurm.time_out(first);
  bool replaced = false;
  for (int i = 0; i < 600 && !replaced; ++i) {
    auto jobs = cluster.jobs();
    replaced = jobs.size() == 2 && jobs[0].ended && !jobs[1].ended;
    if (!replaced) std::this_thread::sleep_for(100ms);
  }
  REQUIRE_MESSAGE(replaced, slurm.describe());
  CHECK(cluster.failures().empty());
  REQUIRE(cluster.wait_for_workers(2, 60s));
  dtask::Client client(cluster);
  CHECK(client.submit(inc, 1).result() == 2);
  client.close();
  cluster.close();
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
}

TEST_CASE("slurm_cluster.job_failing_before_join_names_job_and_log") {
  FakeSlurm slurm;
  auto o = slurm.options();
  o.plugin = "/nonexistent/libtasks.so";  // the workers cannot start: the job fails
  dtask::slurm::Cluster cluster(o);
  cluster.scale_jobs(1);
  std::string id = cluster.jobs().at(0).id;
  std::string log = cluster.jobs().at(0).log_file;
  std::string message;
  try {
    (void)cluster.wait_for_workers(2, 60s);
  } catch (const dtask::slurm::JobFailedError& e) {
    message = e.what();
  }
  CHECK(message.find("slurm job " + id) != std::string::npos);
  CHECK(message.find("FAILED") != std::string::npos);
  CHECK(message.find(log) != std::string::npos);
  // No resubmission loop: the failed job is not replaced until scale() is called again.
  std::this_thread::sleep_for(1s);
  CHECK(slurm.calls("sbatch") == 1);
  cluster.close();
  // The log stays for the user to read (the .err holds dtask-worker's complaint).
  CHECK(fs::exists(log));
  CHECK(read(fs::path(log).replace_extension(".err")).find("nonexistent") != std::string::npos);
}

TEST_CASE("slurm_cluster.dry_run_refusal_is_slurms_message") {
  FakeSlurm slurm;
  std::ofstream(slurm.dir / "refuse")
      << "sbatch: error: Batch job submission failed: Invalid partition name specified\n";
  std::string message;
  try {
    dtask::slurm::Cluster cluster(slurm.options());
  } catch (const dtask::slurm::SlurmError& e) {
    message = e.what();
  }
  CHECK(message.find("sbatch: error: Batch job submission failed: Invalid partition name specified") !=
        std::string::npos);
  CHECK(slurm.calls("sbatch") == 0);
  CHECK(empty_dir(slurm.dir / "shared"));
}

TEST_CASE("slurm_cluster.option_errors_at_creation") {
  FakeSlurm slurm;
  auto o = slurm.options();
  o.processes = 3;  // > cores
  CHECK_THROWS_AS(dtask::slurm::Cluster{o}, std::invalid_argument);
  CHECK(slurm.calls("test-only") == 0);
}

namespace {
// Runs a command line, returns its stdout and exit code.
std::pair<std::string, int> shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}
}  // namespace

TEST_CASE("slurm_cluster.kill_9_then_dtask_cluster_cancel") {
  FakeSlurm slurm;
  auto o = slurm.options();
  fs::path ready = slurm.dir / "ready";
  // The program that gets kill -9ed: a child of its own, so this test survives it.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      dtask::slurm::Cluster cluster(o);
      cluster.scale_jobs(2);
      if (!cluster.wait_for_workers(4, 60s)) ::_exit(3);
      std::ofstream(ready) << cluster.id();
      ::pause();
    } catch (...) {
    }
    ::_exit(4);
  }
  for (int i = 0; i < 600 && read(ready).empty(); ++i) std::this_thread::sleep_for(100ms);
  std::string id = read(ready);
  REQUIRE_FALSE(id.empty());
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  fs::path tool = fs::path(std::getenv("DTASK_WORKER_EXE")).parent_path() / "dtask-cluster";
  std::string dir = " --directory " + o.shared_directory;
  auto [listing, list_code] = shell(tool.string() + dir + " list");
  CHECK(list_code == 0);
  CHECK(listing.find(id) != std::string::npos);
  CHECK(listing.find("program gone") != std::string::npos);
  auto [out, code] = shell(tool.string() + dir + " cancel --all");
  CHECK(code == 0);
  CHECK(out.find(id + ": cancelled 2 job(s)") != std::string::npos);
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
  CHECK_FALSE(fs::exists(fs::path(o.shared_directory) / id / "state.json"));
  CHECK_FALSE(fs::exists(fs::path(o.shared_directory) / id / "scheduler.json"));
  auto [after, after_code] = shell(tool.string() + dir + " list");
  CHECK(after.find(id) == std::string::npos);
}

TEST_CASE("slurm_cluster.pending_reason_then_walltime_replacement") {
  FakeSlurm slurm;
  std::ofstream(slurm.dir / "hold") << "";
  dtask::slurm::Cluster cluster(slurm.options());
  dtask::Client client(cluster);
  cluster.scale_jobs(1);
  // While the job pends, the user sees Slurm's reason.
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    auto jobs = cluster.jobs();
    seen = jobs.size() == 1 && jobs[0].state == "PENDING" && jobs[0].reason == "Priority";
    if (!seen) std::this_thread::sleep_for(100ms);
  }
  CHECK(seen);
  fs::remove(slurm.dir / "hold");
  REQUIRE(cluster.wait_for_workers(2, 60s));
  std::string first = cluster.jobs().at(0).id;
  CHECK(client.submit(inc, 1).result() == 2);
  // The job reaches its walltime: the cluster, scaled to 1, submits a replacement.
  slurm.time_out(first);
  bool replaced = false;
  for (int i = 0; i < 300 && !replaced; ++i) {
    auto jobs = cluster.jobs();
    replaced = jobs.size() == 2 && jobs[0].ended && jobs[0].state == "TIMEOUT" && jobs[1].workers_joined == 2;
    if (!replaced) std::this_thread::sleep_for(100ms);
  }
  CHECK(replaced);
  CHECK(slurm.calls("sbatch") == 2);
  CHECK(cluster.failures().empty());  // a job that ran its workers and timed out is no failure
  CHECK(client.submit(inc, 2).result() == 3);
  client.close();
  cluster.close();
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
}

TEST_CASE("slurm_cluster.sigterm_closes_clusters") {
  FakeSlurm slurm;
  auto o = slurm.options();
  fs::path ready = slurm.dir / "ready";
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      dtask::slurm::close_clusters_on_signals();
      dtask::slurm::Cluster cluster(o);
      cluster.scale_jobs(2);
      if (!cluster.wait_for_workers(4, 60s)) ::_exit(3);
      std::ofstream(ready) << cluster.id();
      while (true) ::pause();
    } catch (...) {
    }
    ::_exit(4);
  }
  for (int i = 0; i < 600 && read(ready).empty(); ++i) std::this_thread::sleep_for(100ms);
  std::string id = read(ready);
  REQUIRE_FALSE(id.empty());
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  // The program still dies of the signal, but only after its jobs are gone and its files removed.
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(slurm.calls("scancel") == 1);
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
  CHECK(empty_dir(o.shared_directory));
}

TEST_CASE("slurm_cluster.backlog_cap_and_sbatch_errors") {
  FakeSlurm slurm;
  std::ofstream(slurm.dir / "hold") << "";
  auto o = slurm.options();
  o.max_pending_jobs = 2;
  o.cores = 1;
  o.processes = 1;
  dtask::slurm::Cluster cluster(o);
  cluster.scale_jobs(3);
  CHECK(slurm.calls("sbatch") == 2);  // never more than 2 waiting in the queue
  std::this_thread::sleep_for(1s);    // several polls: still pending, still 2
  CHECK(slurm.calls("sbatch") == 2);
  fs::remove(slurm.dir / "hold");
  REQUIRE(cluster.wait_for_workers(3, 60s));  // room again: the third follows
  CHECK(slurm.calls("sbatch") == 3);
  // sbatch refuses (a limit reached since creation): scale() throws Slurm's message.
  std::ofstream(slurm.dir / "sbatch_fails") << "sbatch: error: QOSMaxSubmitJobPerUserLimit\n";
  std::string message;
  try {
    cluster.scale_jobs(4);
  } catch (const dtask::slurm::SlurmError& e) {
    message = e.what();
  }
  CHECK(message.find("sbatch: error: QOSMaxSubmitJobPerUserLimit") != std::string::npos);
  cluster.close();
  CHECK_MESSAGE(slurm.live_jobs() == 0, slurm.describe());
}

// Golden tests of slurm::Cluster's job script: directives, skip, prologue, memory split, threads, and the option checks.
#include <doctest/doctest.h>

#include "cluster/job_script.hpp"
#include "common/units.hpp"

using namespace dtask::slurm;

namespace {
const JobScriptPaths kPaths{"/shared/c1/scheduler.json", "/shared/c1/logs", "/opt/dtask/bin/dtask-worker"};

ClusterOptions seed() {
  // The seed's dask_slurm_example.py.
  ClusterOptions o;
  o.cores = 18;
  o.memory = "24GB";
  o.account = "myproject";
  o.walltime = "00:30:00";
  o.processes = 17;
  o.queue = "shared";
  o.plugin = "/home/me/libtasks.so";
  o.fast_paths = dtask::FastPaths::all();
  return o;
}
}  // namespace

TEST_CASE("job_script.seed_example") {
  CHECK(job_script(seed(), kPaths) ==
        "#!/usr/bin/env bash\n"
        "\n"
        "#SBATCH -J dtask-worker\n"
        "#SBATCH -A myproject\n"
        "#SBATCH -p shared\n"
        "#SBATCH -n 1\n"
        "#SBATCH --cpus-per-task=18\n"
        "#SBATCH --mem=23G\n"
        "#SBATCH -t 00:30:00\n"
        "#SBATCH -o /shared/c1/logs/dtask-worker-%j.out\n"
        "#SBATCH -e /shared/c1/logs/dtask-worker-%j.err\n"
        "\n"
        "/opt/dtask/bin/dtask-worker --scheduler-file /shared/c1/scheduler.json --plugin /home/me/libtasks.so"
        " --nworkers 17 --nthreads 1 --memory-limit 1411764705 --name ${SLURM_JOB_ID}\n");
}

TEST_CASE("job_script.directives_skip_prologue_and_extras") {
  ClusterOptions o = seed();
  o.account.clear();
  o.memory.clear();
  o.cores = 8;
  o.processes = 2;
  o.job_name = "mine";
  o.job_extra_directives = {"--qos=debug", "--constraint=cpu"};
  o.job_directives_skip = {"-p shared", "--cpus-per-task"};
  o.job_script_prologue = {"module load gcc/12", "export OMP_NUM_THREADS=1"};
  o.local_directory = "$TMPDIR/dtask";
  o.interface = "hsn0";
  o.worker_extra_args = {"--resources", "GPU=1", "a b"};
  o.fast_paths = dtask::FastPaths::none();
  o.log_level = "info";
  CHECK(job_script(o, kPaths) ==
        "#!/usr/bin/env bash\n"
        "\n"
        "#SBATCH -J mine\n"
        "#SBATCH -n 1\n"
        "#SBATCH -t 00:30:00\n"
        "#SBATCH -o /shared/c1/logs/mine-%j.out\n"
        "#SBATCH -e /shared/c1/logs/mine-%j.err\n"
        "#SBATCH --qos=debug\n"
        "#SBATCH --constraint=cpu\n"
        "\n"
        "module load gcc/12\n"
        "export OMP_NUM_THREADS=1\n"
        "/opt/dtask/bin/dtask-worker --scheduler-file /shared/c1/scheduler.json --plugin /home/me/libtasks.so"
        " --nworkers 2 --nthreads 4 --name ${SLURM_JOB_ID} --local-directory \"$TMPDIR/dtask\" --interface hsn0"
        " --log-level info --fast-paths=none --resources GPU=1 'a b'\n");
}

TEST_CASE("job_script.memory_and_threads_split") {
  ClusterOptions o = seed();
  o.cores = 16;
  o.processes = 4;
  o.memory = "64GiB";
  auto s = job_script(o, kPaths);
  CHECK(s.find("#SBATCH --mem=64G\n") != std::string::npos);
  CHECK(s.find(" --nworkers 4 --nthreads 4 --memory-limit 17179869184 ") != std::string::npos);
  o.memory = "1500MB";
  o.processes = 3;
  s = job_script(o, kPaths);
  CHECK(s.find("#SBATCH --mem=2G\n") != std::string::npos);  // 1.4 GiB, rounded up
  CHECK(s.find(" --nthreads 5 --memory-limit 500000000 ") != std::string::npos);
  o.memory = "300MiB";
  CHECK(job_script(o, kPaths).find("#SBATCH --mem=300M\n") != std::string::npos);
}

TEST_CASE("job_script.memory_thresholds_only_when_not_the_defaults") {
  ClusterOptions o = seed();
  CHECK(job_script(o, kPaths).find("--memory-t") == std::string::npos);  // defaults: nothing said
  o.memory_thresholds.target = 0.5;
  o.memory_thresholds.terminate = 0;  // off
  o.local_directory = "/local/scratch";
  const std::string s = job_script(o, kPaths);
  CHECK(s.find(" --local-directory /local/scratch --memory-target=0.5 --memory-terminate=0\n") != std::string::npos);
  CHECK(s.find("--memory-spill") == std::string::npos);
  CHECK(s.find("--memory-pause") == std::string::npos);
  o.memory_thresholds.pause = 0.4;  // below spill 0.7
  CHECK_THROWS_WITH_AS(validate(o), doctest::Contains("slurm::Cluster: memory threshold pause (0.4) is below spill (0.7)"),
                       std::invalid_argument);
}

TEST_CASE("job_script.validation") {
  ClusterOptions o = seed();
  o.processes = 19;
  CHECK_THROWS_WITH_AS(validate(o), doctest::Contains("processes (19) must not exceed cores (18)"), std::invalid_argument);
  o = seed();
  o.memory = "24 gigs";
  CHECK_THROWS_WITH_AS(validate(o), doctest::Contains("cannot read memory '24 gigs'"), std::invalid_argument);
  o = seed();
  o.walltime = "30 minutes";
  CHECK_THROWS_WITH_AS(validate(o), doctest::Contains("walltime '30 minutes'"), std::invalid_argument);
  o = seed();
  o.plugin.clear();
  CHECK_THROWS_WITH_AS(validate(o), doctest::Contains("plugin"), std::invalid_argument);
  o = seed();
  o.job_name = "my job";
  CHECK_THROWS_AS(validate(o), std::invalid_argument);
  o = seed();
  o.job_extra_directives = {"--qos=a\nrm -rf /"};
  CHECK_THROWS_AS(validate(o), std::invalid_argument);
  CHECK_NOTHROW(validate(seed()));
}

TEST_CASE("job_script.walltime_forms") {
  for (const char* ok : {"30", "30:00", "00:30:00", "1-0", "1-12:00", "2-00:00:00", "UNLIMITED"}) {
    CAPTURE(ok);
    CHECK(valid_walltime(ok));
  }
  for (const char* bad : {"", "30m", "1:2:3:4", "-1", "1-", "a:b"}) {
    CAPTURE(bad);
    CHECK_FALSE(valid_walltime(bad));
  }
}

TEST_CASE("job_script.memory_parsing") {
  CHECK(dtask::parse_bytes("24GB") == 24000000000ULL);
  CHECK(dtask::parse_bytes("4GiB") == 4294967296ULL);
  CHECK(dtask::parse_bytes("500M") == 500000000ULL);
  CHECK(dtask::parse_bytes("1e9") == 1000000000ULL);
  CHECK_FALSE(dtask::parse_bytes("lots"));
  CHECK_FALSE(dtask::parse_bytes("-1GB"));
  CHECK(slurm_memory(24000000000ULL) == "23G");
  CHECK(slurm_memory(1024ULL * 1024 * 1024) == "1G");
  CHECK(slurm_memory(1024ULL * 1024 + 1) == "2M");
  CHECK(slurm_memory(10) == "1K");
}

// common/units: the sizes and durations users write (also the CLI tools' --memory-limit, --lifetime).
TEST_CASE("units.sizes_and_durations") {
  CHECK(dtask::parse_bytes("0") == 0ULL);
  CHECK(dtask::parse_bytes("2 kib") == 2048ULL);
  CHECK(dtask::parse_bytes("1.5TB") == 1500000000000ULL);
  CHECK_FALSE(dtask::parse_bytes(""));
  CHECK_FALSE(dtask::parse_bytes("GB"));
  CHECK_FALSE(dtask::parse_bytes("3 parsecs"));
  CHECK(dtask::parse_duration_ms("30") == 30000ULL);
  CHECK(dtask::parse_duration_ms("500ms") == 500ULL);
  CHECK(dtask::parse_duration_ms("10s") == 10000ULL);
  CHECK(dtask::parse_duration_ms("55m") == 3300000ULL);
  CHECK(dtask::parse_duration_ms("2 min") == 120000ULL);
  CHECK(dtask::parse_duration_ms("1.5h") == 5400000ULL);
  CHECK_FALSE(dtask::parse_duration_ms("-1s"));
  CHECK_FALSE(dtask::parse_duration_ms("soon"));
  CHECK_FALSE(dtask::parse_duration_ms("5d"));
}

TEST_CASE("job_script.shell_words") {
  CHECK(shell_word("/a/b-c_d.so") == "/a/b-c_d.so");
  CHECK(shell_word("a b") == "'a b'");
  CHECK(shell_word("it's") == "'it'\\''s'");
  CHECK(shell_word("") == "''");
  CHECK(shell_word("$(rm)") == "'$(rm)'");
}

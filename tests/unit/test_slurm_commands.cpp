// Slurm's commands: parsing recorded sbatch/squeue/sacct output, the command lines, and run_command's capture and bounds.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cluster/slurm_commands.hpp"

using namespace dtask::slurm;
using namespace std::chrono_literals;

TEST_CASE("slurm_commands.sbatch_parsable") {
  CHECK(parse_sbatch_id("4242\n") == "4242");
  CHECK(parse_sbatch_id("4242;cluster1\n") == "4242");
  CHECK(parse_sbatch_id("Welcome to Kestrel\n4243\n") == "4243");  // a site banner before the id
  CHECK(parse_sbatch_id("17_3\n") == "17_3");
  CHECK_FALSE(parse_sbatch_id(""));
  CHECK_FALSE(parse_sbatch_id("sbatch: error: Batch job submission failed\n"));
  CHECK_FALSE(parse_sbatch_id("Submitted batch job 12\n"));  // not --parsable
}

TEST_CASE("slurm_commands.squeue_states_and_reasons") {
  // Recorded from `squeue --jobs=101,102,103 -h -o '%i %T %r'`.
  const char* out =
      "101 RUNNING None\n"
      "102 PENDING Priority\n"
      "103 PENDING QOSMaxJobsPerUserLimit\n"
      "104 PENDING ReqNodeNotAvail, Reserved for maintenance\n"
      "105 COMPLETING None\n"
      "\n"
      "garbage\n";
  auto jobs = parse_squeue(out);
  REQUIRE(jobs.size() == 5);
  CHECK(jobs["101"].state == "RUNNING");
  CHECK(jobs["102"].state == "PENDING");
  CHECK(jobs["102"].reason == "Priority");
  CHECK(jobs["103"].reason == "QOSMaxJobsPerUserLimit");
  CHECK(jobs["104"].reason == "ReqNodeNotAvail, Reserved for maintenance");
  CHECK(jobs["105"].state == "COMPLETING");
  CHECK(parse_squeue("").empty());
  CHECK(parse_squeue("JOBID STATE REASON\n").empty());  // a header, if -h was lost in a wrapper
}

TEST_CASE("slurm_commands.sacct_final_states") {
  // Recorded from `sacct -j 201,202,203,204 -n -P -X -o JobID,State`.
  const char* out =
      "201|COMPLETED\n"
      "202|FAILED\n"
      "203|CANCELLED by 1000\n"
      "204|TIMEOUT\n"
      "204.batch|CANCELLED\n";
  auto states = parse_sacct(out);
  REQUIRE(states.size() == 4);
  CHECK(states["201"] == "COMPLETED");
  CHECK(states["202"] == "FAILED");
  CHECK(states["203"] == "CANCELLED");
  CHECK(states["204"] == "TIMEOUT");
}

TEST_CASE("slurm_commands.state_classes") {
  for (const char* s : {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "PREEMPTED"}) {
    CAPTURE(s);
    CHECK(is_final_state(s));
    CHECK(is_failure_state(s));
  }
  CHECK(is_final_state("COMPLETED"));
  CHECK_FALSE(is_failure_state("COMPLETED"));
  for (const char* s : {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"}) {
    CAPTURE(s);
    CHECK_FALSE(is_final_state(s));
  }
}

TEST_CASE("slurm_commands.command_lines") {
  using V = std::vector<std::string>;
  CHECK(sbatch_argv("/usr/bin/sbatch", false) == V{"/usr/bin/sbatch", "--parsable"});
  CHECK(sbatch_argv("sbatch", true) == V{"sbatch", "--test-only"});
  // One batched squeue per poll, whatever the number of jobs (slurmctld rate-limits RPCs).
  CHECK(squeue_argv("squeue", {"1", "2", "3"}) == V{"squeue", "--jobs=1,2,3", "-t", "all", "-h", "-o", "%i %T %r"});
  CHECK(sacct_argv("sacct", {"4", "5"}) == V{"sacct", "-j", "4,5", "-n", "-P", "-X", "-o", "JobID,State"});
  CHECK(scancel_argv("scancel", {"7", "8"}) == V{"scancel", "7", "8"});
}

TEST_CASE("slurm_commands.run_command_captures") {
  auto r = run_command({"/bin/sh", "-c", "cat; echo err >&2; exit 3"}, "from stdin\n", 10s);
  CHECK(r.exit_code == 3);
  CHECK_FALSE(r.ok());
  CHECK(r.out == "from stdin\n");
  CHECK(r.err == "err\n");
  CHECK(r.message() == "err");
  // A command that never reads a large stdin must not kill us with SIGPIPE or hang.
  auto q = run_command({"/bin/sh", "-c", "exit 0"}, std::string(1 << 20, 'x'), 10s);
  CHECK(q.ok());
  auto missing = run_command({"/nonexistent/sbatch"}, "", 10s);
  CHECK(missing.exit_code == -1);
  CHECK(missing.message().find("/nonexistent/sbatch") != std::string::npos);
}

TEST_CASE("slurm_commands.run_command_timeout") {
  auto r = run_command({"/bin/sh", "-c", "sleep 30"}, "", 200ms);
  CHECK(r.timed_out);
  CHECK(r.exit_code == -1);
}

TEST_CASE("slurm_commands.sbatch_calls") {
  char dir[] = "/tmp/dtask-test-sbatch-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  std::string fake = std::string(dir) + "/sbatch";
  {
    std::ofstream f(fake);
    // Refuses a dry run like Slurm does; otherwise reads the script and answers --parsable.
    f << "#!/bin/sh\n"
         "if [ \"$1\" = --test-only ]; then echo 'sbatch: error: Batch job submission failed: Invalid account or "
         "account/partition combination specified' >&2; exit 1; fi\n"
         "grep -q '^#SBATCH -J' && echo '4711;cluster'\n";
  }
  ::chmod(fake.c_str(), 0700);
  CHECK(sbatch_test_only(fake, "#!/bin/sh\n", 10s) ==
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified");
  auto ok = sbatch_submit(fake, "#!/bin/sh\n#SBATCH -J x\n", 10s);
  CHECK(ok.ok());
  CHECK(ok.id == "4711");
  auto bad = sbatch_submit(fake, "#!/bin/sh\n", 10s);  // prints no id
  CHECK_FALSE(bad.ok());
  std::filesystem::remove_all(dir);
}

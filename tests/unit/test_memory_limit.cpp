// memory_limit as users write it (0, auto, sizes, fractions) over a given environment, the cgroup limit reader, and resident memory.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <vector>

#include "common/memory_limit.hpp"
#include "common/node_ranks.hpp"

using namespace dtask;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;
constexpr std::uint64_t kMiB = 1ull << 20;

MemoryEnvironment machine_only(std::uint64_t machine) { return MemoryEnvironment{machine, 0}; }
MemoryEnvironment with_slurm(std::uint64_t machine, std::uint64_t job_node) { return MemoryEnvironment{machine, job_node}; }

std::uint64_t resolve(const std::string& spec, int workers, const MemoryEnvironment& env) {
  std::string error;
  auto v = resolve_memory_limit(spec, workers, env, &error);
  REQUIRE_MESSAGE(v.has_value(), error);
  return *v;
}

std::string error_of(const std::string& spec, int workers, const MemoryEnvironment& env) {
  std::string error;
  auto v = resolve_memory_limit(spec, workers, env, &error);
  CHECK_FALSE(v.has_value());
  return error;
}

struct Scratch {
  fs::path root;
  Scratch() {
    char tmpl[] = "/tmp/dtask-cgroup-test-XXXXXX";
    root = ::mkdtemp(tmpl);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

}  // namespace

TEST_CASE("memory_limit.zero_is_no_limit") {
  CHECK(resolve("0", 4, machine_only(64 * kGiB)) == 0);
  CHECK(resolve(" 0 ", 1, machine_only(0)) == 0);
  CHECK(resolve("0GiB", 1, machine_only(64 * kGiB)) == 0);
}

TEST_CASE("memory_limit.auto_divides_the_machine") {
  CHECK(resolve("auto", 1, machine_only(64 * kGiB)) == 64 * kGiB);
  CHECK(resolve("auto", 2, machine_only(64 * kGiB)) == 32 * kGiB);
  CHECK(resolve("auto", 4, machine_only(64 * kGiB)) == 16 * kGiB);
  CHECK(resolve("AUTO", 4, machine_only(64 * kGiB)) == 16 * kGiB);
  CHECK(resolve("auto", 0, machine_only(64 * kGiB)) == 64 * kGiB);  // below 1 counts as 1
}

TEST_CASE("memory_limit.auto_divides_the_slurm_job_memory") {
  // sbatch --mem=24G on a 64 GiB node: the job's memory, not the node's
  CHECK(resolve("auto", 2, with_slurm(64 * kGiB, 24 * kGiB)) == 12 * kGiB);
  CHECK(resolve("auto", 4, with_slurm(64 * kGiB, 24 * kGiB)) == 6 * kGiB);
  // never more than the machine (or its cgroup) has
  CHECK(resolve("auto", 2, with_slurm(16 * kGiB, 24 * kGiB)) == 8 * kGiB);
  // the machine unknown: Slurm's alone
  CHECK(resolve("auto", 4, with_slurm(0, 24 * kGiB)) == 6 * kGiB);
}

TEST_CASE("memory_limit.auto_with_nothing_known_is_an_error") {
  CHECK(error_of("auto", 2, machine_only(0)).find("cannot resolve memory limit 'auto'") == 0);
}

TEST_CASE("memory_limit.sizes") {
  CHECK(resolve("4GiB", 4, machine_only(64 * kGiB)) == 4 * kGiB);
  CHECK(resolve("500MB", 1, machine_only(64 * kGiB)) == 500'000'000);
  CHECK(resolve("256MiB", 2, with_slurm(64 * kGiB, 24 * kGiB)) == 256 * kMiB);  // not divided
  CHECK(resolve("1e9", 1, machine_only(0)) == 1'000'000'000);
  CHECK(resolve("268435456", 1, machine_only(0)) == 256 * kMiB);
}

TEST_CASE("memory_limit.fractions") {
  // each worker gets that share (Dask), of the job's memory under Slurm
  CHECK(resolve("0.5", 4, machine_only(64 * kGiB)) == 32 * kGiB);
  CHECK(resolve("0.25", 2, with_slurm(64 * kGiB, 24 * kGiB)) == 6 * kGiB);
  CHECK(resolve("1", 1, machine_only(64 * kGiB)) == 64 * kGiB);
  CHECK(error_of("0.5", 1, machine_only(0)).find("cannot resolve memory limit '0.5'") == 0);
}

TEST_CASE("memory_limit.malformed_is_an_error") {
  const std::string tail = "': expected 0, auto, a size like 4GiB or a fraction like 0.5";
  CHECK(error_of("bogus", 1, machine_only(64 * kGiB)) == "cannot read memory limit 'bogus" + tail);
  CHECK(error_of("", 1, machine_only(64 * kGiB)) == "cannot read memory limit '" + tail);
  CHECK(error_of("-1", 1, machine_only(64 * kGiB)) == "cannot read memory limit '-1" + tail);
  CHECK(error_of("-0.5", 1, machine_only(64 * kGiB)) == "cannot read memory limit '-0.5" + tail);
  CHECK(error_of("4 parsecs", 1, machine_only(64 * kGiB)) == "cannot read memory limit '4 parsecs" + tail);
  CHECK(error_of("nan", 1, machine_only(64 * kGiB)) == "cannot read memory limit 'nan" + tail);
  // no error text wanted: still nullopt, no crash
  CHECK_FALSE(resolve_memory_limit("bogus", 1, machine_only(1), nullptr).has_value());
}

TEST_CASE("memory_limit.read_environment_from_slurm") {
  ::unsetenv("SLURM_MEM_PER_CPU");
  ::unsetenv("SLURM_CPUS_ON_NODE");
  ::setenv("SLURM_MEM_PER_NODE", "24576", 1);
  MemoryEnvironment env = MemoryEnvironment::read_environment();
  CHECK(env.slurm_job_node == 24 * kGiB);
  CHECK(env.machine > 0);
  ::unsetenv("SLURM_MEM_PER_NODE");
  ::setenv("SLURM_MEM_PER_CPU", "1024", 1);
  ::setenv("SLURM_CPUS_ON_NODE", "6", 1);
  CHECK(MemoryEnvironment::read_environment().slurm_job_node == 6 * kGiB);
  ::unsetenv("SLURM_MEM_PER_CPU");
  ::unsetenv("SLURM_CPUS_ON_NODE");
  CHECK(MemoryEnvironment::read_environment().slurm_job_node == 0);
  // --mem=0 (all of the node): no job figure, the machine's counts
  ::setenv("SLURM_MEM_PER_NODE", "0", 1);
  CHECK(MemoryEnvironment::read_environment().slurm_job_node == 0);
  ::unsetenv("SLURM_MEM_PER_NODE");
}

TEST_CASE("memory_limit.cgroup_v2_smallest_on_the_path") {
  Scratch s;
  s.write("memory.max", "max\n");
  s.write("job_7/memory.max", "8589934592\n");
  s.write("job_7/step_0/memory.max", "max\n");
  CHECK(cgroup_memory_limit("0::/job_7/step_0\n", s.root.string()) == 8 * kGiB);
  CHECK(cgroup_memory_limit("0::/\n", s.root.string()) == 0);
  s.write("job_7/step_0/memory.max", "1073741824\n");
  CHECK(cgroup_memory_limit("0::/job_7/step_0\n", s.root.string()) == kGiB);
  // a namespaced cgroup whose path is not under the mount: the mount's own file
  s.write("memory.max", "2147483648\n");
  CHECK(cgroup_memory_limit("0::/elsewhere\n", s.root.string()) == 2 * kGiB);
}

TEST_CASE("memory_limit.cgroup_v1_memory_controller") {
  Scratch s;
  s.write("memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "unlimited"
  s.write("memory/slurm/uid_0/job_9/memory.limit_in_bytes", "4294967296\n");
  const std::string cgroup = "12:cpu,cpuacct:/slurm/uid_0/job_9\n4:memory:/slurm/uid_0/job_9\n0::/\n";
  CHECK(cgroup_memory_limit(cgroup, s.root.string()) == 4 * kGiB);
  CHECK(cgroup_memory_limit("4:memory:/\n", s.root.string()) == 0);
  CHECK(cgroup_memory_limit("", s.root.string()) == 0);
  CHECK(cgroup_memory_limit("garbage\n", s.root.string()) == 0);
}

TEST_CASE("memory_limit.machine_memory_is_known") {
  const std::uint64_t m = machine_memory();
  CHECK(m > 0);
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  CHECK(m <= static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
}

TEST_CASE("memory_limit.resident_bytes_grows_after_touching_64MiB") {
  const std::uint64_t before = resident_bytes();
  CHECK(before > 0);
  CHECK(resident_bytes_of(::getpid()) > 0);
  CHECK(resident_bytes_of(0) == 0);
  CHECK(resident_bytes_of(-5) == 0);
  std::vector<char> block(64 * kMiB);
  std::memset(block.data(), 1, block.size());
  const std::uint64_t after = resident_bytes();
  CHECK(after >= before + 60 * kMiB);
  CHECK(block[block.size() - 1] == 1);
}

// ---- how many worker ranks share this node (dtask-run's "auto") ----

namespace {
struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> fn() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};
}  // namespace

TEST_CASE("node_ranks.slurm_task_counts") {
  CHECK(slurm_tasks_on_node("4", 0) == 4);
  CHECK(slurm_tasks_on_node("2(x3),1", 0) == 2);
  CHECK(slurm_tasks_on_node("2(x3),1", 2) == 2);
  CHECK(slurm_tasks_on_node("2(x3),1", 3) == 1);
  CHECK_FALSE(slurm_tasks_on_node("2(x3),1", 4).has_value());
  CHECK_FALSE(slurm_tasks_on_node("2(3)", 0).has_value());
  CHECK_FALSE(slurm_tasks_on_node("", 0).has_value());
  CHECK_FALSE(slurm_tasks_on_node("x", 0).has_value());
}

TEST_CASE("node_ranks.open_mpi") {
  FakeEnv e{{{"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
             // mpirun inside an allocation also sees the allocation's Slurm variables: ignored
             {"SLURM_LOCALID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_TASKS_PER_NODE", "1"}}};
  CHECK(node_ranks(5, e.fn()) == NodeRanks{4, 4});
  // 8 ranks, 4 a node: node 1 holds four workers, node 0 two (ranks 0 and 1 are the scheduler and client)
  CHECK(worker_ranks_on_node(node_ranks(5, e.fn()), 8, 2) == 4);
  CHECK(worker_ranks_on_node(node_ranks(1, e.fn()), 8, 2) == 2);
  // --no-client: rank 1 is a worker too
  CHECK(worker_ranks_on_node(node_ranks(1, e.fn()), 8, 1) == 3);
}

TEST_CASE("node_ranks.slurm_block") {
  FakeEnv e{{{"SLURM_LOCALID", "2"}, {"SLURM_NODEID", "1"}, {"SLURM_STEP_TASKS_PER_NODE", "3,2"},
             {"SLURM_TASKS_PER_NODE", "4(x2)"}}};
  // the step's counts win over the job's: node 1 runs ranks 3 and 4
  CHECK(node_ranks(4, e.fn()) == std::nullopt);  // local id 2 is not below the step's 2 tasks
  e.vars["SLURM_LOCALID"] = "1";
  CHECK(node_ranks(4, e.fn()) == NodeRanks{3, 2});
  CHECK(worker_ranks_on_node(node_ranks(4, e.fn()), 5, 2) == 2);
  e.vars.erase("SLURM_STEP_TASKS_PER_NODE");
  CHECK(node_ranks(4, e.fn()) == NodeRanks{3, 4});
  e.vars.erase("SLURM_TASKS_PER_NODE");
  e.vars.erase("SLURM_NODEID");
  e.vars["SLURM_NTASKS_PER_NODE"] = "2";
  CHECK(node_ranks(4, e.fn()) == NodeRanks{3, 2});
}

TEST_CASE("node_ranks.nothing_known_counts_every_worker") {
  FakeEnv e;
  CHECK(node_ranks(3, e.fn()) == std::nullopt);
  CHECK(worker_ranks_on_node(std::nullopt, 6, 2) == 4);
  CHECK(worker_ranks_on_node(std::nullopt, 2, 2) == 1);  // at least one
  e.vars = {{"OMPI_COMM_WORLD_LOCAL_RANK", "7"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}};  // nonsense
  CHECK(node_ranks(3, e.fn()) == std::nullopt);
}

// A worker's memory_limit from what users write, the machine's and the Slurm job's memory, and resident memory from /proc (see memory_limit.hpp).
#include "common/memory_limit.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/units.hpp"

namespace dtask {

namespace {

std::uint64_t page_size() {
  const long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<std::uint64_t>(p) : 4096;
}

std::uint64_t statm_resident(const std::string& file) {
  std::ifstream in(file);
  std::uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * page_size();
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// A limit file's value: a number of bytes, or 0 for "max"/unreadable/"unlimited" (v1's huge number).
std::uint64_t read_limit(const std::string& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  if (text.find_first_not_of("0123456789") != std::string::npos) return 0;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno != 0) return 0;
  // v1 writes PAGE_COUNTER_MAX rounded to pages (~2^63) for "no limit": anything that large is none.
  if (v >= (1ull << 62)) return 0;
  return v;
}

// The smallest limit in `file` in the directories from `mount + path` up to `mount`; 0: none.
std::uint64_t smallest_on_path(const std::string& mount, std::string path, const std::string& file) {
  std::uint64_t best = 0;
  auto take = [&best](std::uint64_t v) {
    if (v != 0 && (best == 0 || v < best)) best = v;
  };
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (;;) {
    take(read_limit(mount + path + "/" + file));
    if (path.empty()) break;
    const auto slash = path.rfind('/');
    path = slash == std::string::npos ? std::string() : path.substr(0, slash);
  }
  return best;
}

std::uint64_t env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  // Slurm writes plain numbers; SLURM_CPUS_ON_NODE is a count, the memory ones MiB.
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (end == v) return 0;
  return n;
}

}  // namespace

std::uint64_t resident_bytes() { return statm_resident("/proc/self/statm"); }

std::uint64_t resident_bytes_of(long pid) {
  if (pid <= 0) return 0;
  return statm_resident("/proc/" + std::to_string(pid) + "/statm");
}

std::uint64_t cgroup_memory_limit(const std::string& proc_self_cgroup, const std::string& cgroup_root) {
  std::uint64_t best = 0;
  auto take = [&best](std::uint64_t v) {
    if (v != 0 && (best == 0 || v < best)) best = v;
  };
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "<id>:<controllers>:<path>"; v2 is "0::<path>".
    const auto a = line.find(':');
    if (a == std::string::npos) continue;
    const auto b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      take(smallest_on_path(cgroup_root, path, "memory.max"));
      take(smallest_on_path(cgroup_root + "/unified", path, "memory.max"));  // hybrid layout
    } else {
      std::istringstream names(controllers);
      std::string name;
      while (std::getline(names, name, ',')) {
        if (name == "memory") take(smallest_on_path(cgroup_root + "/memory", path, "memory.limit_in_bytes"));
      }
    }
  }
  return best;
}

std::uint64_t machine_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  std::uint64_t physical = pages > 0 ? static_cast<std::uint64_t>(pages) * page_size() : 0;
  std::ifstream in("/proc/self/cgroup");
  std::stringstream text;
  text << in.rdbuf();
  const std::uint64_t cgroup = cgroup_memory_limit(text.str(), "/sys/fs/cgroup");
  if (cgroup != 0 && (physical == 0 || cgroup < physical)) return cgroup;
  return physical;
}

MemoryEnvironment MemoryEnvironment::read_environment() {
  MemoryEnvironment env;
  env.machine = machine_memory();
  constexpr std::uint64_t kMiB = 1024 * 1024;
  if (const std::uint64_t per_node = env_number("SLURM_MEM_PER_NODE"); per_node != 0) {
    env.slurm_job_node = per_node * kMiB;
  } else if (const std::uint64_t per_cpu = env_number("SLURM_MEM_PER_CPU"); per_cpu != 0) {
    env.slurm_job_node = per_cpu * kMiB * std::max<std::uint64_t>(1, env_number("SLURM_CPUS_ON_NODE"));
  }
  return env;
}

std::optional<std::uint64_t> resolve_memory_limit(const std::string& spec, int workers_on_node,
                                                  const MemoryEnvironment& env, std::string* error) {
  const std::string text = trim(spec);
  auto fail = [&](const std::string& why) -> std::optional<std::uint64_t> {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  const auto workers = static_cast<std::uint64_t>(std::max(1, workers_on_node));
  // What "auto" divides and a fraction is a fraction of: the job's memory on this node when
  // Slurm gave it --mem (never more than the machine has), else the machine's.
  std::uint64_t pool = env.machine;
  if (env.slurm_job_node != 0) pool = env.machine != 0 ? std::min(env.slurm_job_node, env.machine) : env.slurm_job_node;

  std::string lower = text;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "auto") {
    if (pool == 0) return fail("cannot resolve memory limit 'auto': neither the machine's memory nor a Slurm --mem is known");
    return pool / workers;
  }
  const std::string malformed =
      "cannot read memory limit '" + text + "': expected 0, auto, a size like 4GiB or a fraction like 0.5";
  if (text.empty()) return fail(malformed);
  // A plain number up to 1 is a fraction (Dask reads memory_limit=0.5 as half the memory); 0 is
  // no limit; a larger plain number is bytes.
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  if (end != text.c_str() && *end == '\0') {
    if (!std::isfinite(number) || number < 0) return fail(malformed);
    if (number == 0) return 0;
    if (number <= 1) {
      if (pool == 0) return fail("cannot resolve memory limit '" + text + "': the machine's memory is not known");
      return static_cast<std::uint64_t>(number * static_cast<double>(pool));
    }
  }
  const auto bytes = parse_bytes(text);
  if (!bytes) return fail(malformed);
  return *bytes;
}

}  // namespace dtask

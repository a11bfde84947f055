// glibc malloc tuning: the hugetlb tunable by re-executing, and malloc_trim (see hugepages.hpp for why).
#include "common/hugepages.hpp"

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace dtask {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DTASK_SANITIZED_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DTASK_SANITIZED_MALLOC 1
#endif
#endif

void trim_malloc() {
#ifndef DTASK_SANITIZED_MALLOC
  ::malloc_trim(0);
#endif
}

namespace {
bool thp_in_madvise_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  return std::getline(f, line) && line.find("[madvise]") != std::string::npos;
}
}  // namespace

void reexec_with_hugepage_malloc(char** argv) {
  if (argv == nullptr || argv[0] == nullptr) return;
  if (const char* opt = std::getenv("DTASK_HUGEPAGES"); opt && std::string(opt) == "0") return;
  std::string tunables;
  if (const char* t = std::getenv("GLIBC_TUNABLES")) tunables = t;
  if (tunables.find("glibc.malloc.hugetlb") != std::string::npos) return;
  if (!thp_in_madvise_mode()) return;
  std::string updated = tunables.empty() ? "glibc.malloc.hugetlb=1" : tunables + ":glibc.malloc.hugetlb=1";
  if (::setenv("GLIBC_TUNABLES", updated.c_str(), 1) != 0) return;
  // The resolved path, not /proc/self/exe itself: the kernel names the process after the file
  // it executes, and ps, top and pkill should go on seeing dtask-worker, not "exe".
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  ::execv(ec ? "/proc/self/exe" : self.c_str(), argv);
  // Still here: the exec failed (no /proc?). Go on without huge pages, environment as it was.
  if (tunables.empty()) {
    ::unsetenv("GLIBC_TUNABLES");
  } else {
    ::setenv("GLIBC_TUNABLES", tunables.c_str(), 1);
  }
}

}  // namespace dtask

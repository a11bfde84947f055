// The worker's spill directory: unique, private, removed at destruction, stale ones removed at the next create, live ones kept.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/host.hpp"
#include "worker/spill_directory.hpp"

using dtask::worker::SpillDirectory;
namespace fs = std::filesystem;

namespace {

// A fresh directory for one case, removed after it.
struct Scratch {
  fs::path root;
  Scratch() {
    char tmpl[] = "/tmp/dtask-spill-test-XXXXXX";
    root = ::mkdtemp(tmpl);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  fs::path base() const { return root / "dtask-spill"; }
};

// The host part as the directory names carry it.
std::string host_part() {
  std::string h = dtask::hostname();
  for (char& c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return h;
}

// A pid that is not running: a child that has exited and been reaped.
long dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  int status = 0;
  ::waitpid(p, &status, 0);
  return p;
}

// A directory as a worker that died would have left it: with an unheld .lock (or none) and a file in it.
fs::path leave_directory(const fs::path& base, const std::string& name, bool with_lock) {
  fs::create_directories(base / name);
  if (with_lock) std::ofstream(base / name / ".lock") << "";
  std::ofstream(base / name / "result-1.bin") << "spilled";
  return base / name;
}

std::string error_of(const std::string& local_directory) {
  try {
    SpillDirectory d = SpillDirectory::create(local_directory, "w");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("spill_directory.unique_private_and_removed_at_destruction") {
  Scratch s;
  std::string first, second;
  {
    SpillDirectory a = SpillDirectory::create(s.root.string(), "tcp://1.2.3.4:5/w");
    SpillDirectory b = SpillDirectory::create(s.root.string(), "tcp://1.2.3.4:5/w");
    first = a.path();
    second = b.path();
    CHECK(first != second);
    CHECK(fs::path(first).parent_path() == s.base());
    CHECK(fs::is_directory(first));
    CHECK(fs::path(first).filename().string().find("@" + host_part() + "-" + std::to_string(::getpid()) + "-") !=
          std::string::npos);
    CHECK(fs::path(first).filename().string().find('/') == std::string::npos);
    struct stat st {};
    REQUIRE(::stat(first.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    std::ofstream(fs::path(first) / "x.bin") << "data";
    fs::create_directories(fs::path(first) / "sub");
  }
  CHECK_FALSE(fs::exists(first));
  CHECK_FALSE(fs::exists(second));
  CHECK(fs::is_directory(s.base()));  // the shared parent stays
}

TEST_CASE("spill_directory.move_keeps_one_owner") {
  Scratch s;
  std::string path;
  {
    SpillDirectory a = SpillDirectory::create(s.root.string(), "w");
    path = a.path();
    SpillDirectory b = std::move(a);
    CHECK(a.empty());
    CHECK(b.path() == path);
    {
      SpillDirectory c;
      c = std::move(b);
      CHECK(fs::exists(path));
    }
    CHECK_FALSE(fs::exists(path));
  }
  SpillDirectory none;
  CHECK(none.empty());
}

TEST_CASE("spill_directory.creates_missing_parents") {
  Scratch s;
  SpillDirectory d = SpillDirectory::create((s.root / "a" / "b").string(), "w");
  CHECK(fs::is_directory(d.path()));
  CHECK(fs::path(d.path()).parent_path() == s.root / "a" / "b" / "dtask-spill");
}

TEST_CASE("spill_directory.stale_one_removed_at_next_create") {
  Scratch s;
  fs::create_directories(s.base());
  // Its lock is not held: its worker is gone (even if that pid runs again: ours).
  const fs::path unlocked =
      leave_directory(s.base(), "old@" + host_part() + "-" + std::to_string(::getpid()) + "-abc", true);
  // No lock file and a dead pid: it died before taking the lock.
  const fs::path lockless = leave_directory(s.base(), "old@" + host_part() + "-" + std::to_string(dead_pid()) + "-def", false);
  SpillDirectory d = SpillDirectory::create(s.root.string(), "new");
  CHECK_FALSE(fs::exists(unlocked));
  CHECK_FALSE(fs::exists(lockless));
  CHECK(fs::is_directory(d.path()));
}

TEST_CASE("spill_directory.live_ones_kept") {
  Scratch s;
  SpillDirectory live = SpillDirectory::create(s.root.string(), "live");
  std::ofstream(fs::path(live.path()) / "r.bin") << "held";
  // Between mkdir and taking its lock: no .lock yet, its pid (ours) is alive.
  const fs::path starting = leave_directory(s.base(), "starting@" + host_part() + "-" + std::to_string(::getpid()) + "-x1", false);
  // Another host's, unlocked: flock may be node-local on a shared filesystem, so never judged here.
  const fs::path other_host = leave_directory(s.base(), "w@another-host-" + std::to_string(dead_pid()) + "-x2", true);
  // Not a worker directory at all.
  const fs::path foreign = leave_directory(s.base(), "notes", true);
  // A live lock held by another process (flock is per open file: a child holding it counts as live).
  const fs::path held = leave_directory(s.base(), "held@" + host_part() + "-" + std::to_string(dead_pid()) + "-x3", true);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    const int fd = ::open((held / ".lock").c_str(), O_RDONLY);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) ::_exit(1);
    (void)!::write(ready[1], "x", 1);
    ::pause();  // killed below
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);

  SpillDirectory d = SpillDirectory::create(s.root.string(), "new");
  CHECK(fs::exists(fs::path(live.path()) / "r.bin"));
  CHECK(fs::exists(starting / "result-1.bin"));
  CHECK(fs::exists(other_host / "result-1.bin"));
  CHECK(fs::exists(foreign / "result-1.bin"));
  CHECK(fs::exists(held / "result-1.bin"));

  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  // Now its holder is dead: the next worker to start cleans it.
  SpillDirectory e = SpillDirectory::create(s.root.string(), "next");
  CHECK_FALSE(fs::exists(held));
  CHECK(fs::exists(fs::path(live.path()) / "r.bin"));
}

TEST_CASE("spill_directory.unusable_local_directory_is_a_clear_error") {
  Scratch s;
  const fs::path file = s.root / "plain-file";
  std::ofstream(file) << "not a directory";
  // A path under a regular file cannot be made, even by root.
  const std::string under_file = (file / "spill").string();
  CHECK(error_of(under_file) == "cannot use local directory " + under_file + " for spilling: Not a directory");
  // A regular file itself.
  CHECK(error_of(file.string()).find("cannot use local directory " + file.string() + " for spilling: ") == 0);
  // Without write permission. Root ignores modes, so as root a child process drops to nobody first.
  const fs::path ro = s.root / "ro";
  fs::create_directories(ro);
  ::chmod(s.root.c_str(), 0755);
  ::chmod(ro.c_str(), 0555);
  const std::string expected = "cannot use local directory " + ro.string() + " for spilling: Permission denied";
  if (::geteuid() != 0) {
    CHECK(error_of(ro.string()) == expected);
  } else {
    const pid_t child = ::fork();
    if (child == 0) {
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(3);
      ::_exit(error_of(ro.string()) == expected ? 0 : 1);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  ::chmod(ro.c_str(), 0755);
}

TEST_CASE("spill_directory.empty_local_directory_means_tmpdir") {
  Scratch s;
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("TMPDIR", s.root.c_str(), 1);
  {
    SpillDirectory d = SpillDirectory::create("", "w");
    CHECK(fs::path(d.path()).parent_path() == s.base());
  }
  if (old != nullptr) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
}

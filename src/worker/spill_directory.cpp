// A worker's own spill directory: made unique and locked, stale ones of dead workers of this host removed first (see spill_directory.hpp).
#include "worker/spill_directory.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <system_error>

#include "common/host.hpp"

namespace dtask::worker {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLock = ".lock";
constexpr const char* kLockNew = ".lock.new";

// A name part safe in a path and unambiguous to parse back: '@' separates the worker's name from
// the host, '-' the host from pid and random (the host may hold '-', pid and random do not).
std::string safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.empty() || out == "." || out == "..") out = "worker";
  return out;
}

std::runtime_error cannot_use(const std::string& dir, int err) {
  return std::runtime_error("cannot use local directory " + dir + " for spilling: " + std::strerror(err));
}

// The host and pid a directory name `<name>@<host>-<pid>-<random>` says, or false if it is not one of ours.
bool parse_entry(const std::string& entry, std::string* host, long* pid) {
  const auto at = entry.rfind('@');
  if (at == std::string::npos) return false;
  const std::string rest = entry.substr(at + 1);
  const auto r = rest.rfind('-');
  if (r == std::string::npos || r == 0) return false;
  const auto p = rest.rfind('-', r - 1);
  if (p == std::string::npos || p == 0) return false;
  const std::string pid_text = rest.substr(p + 1, r - p - 1);
  if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) return false;
  *host = rest.substr(0, p);
  *pid = std::strtol(pid_text.c_str(), nullptr, 10);
  return *pid > 0;
}

// ESRCH is the only proof of death; EPERM means alive under another user.
bool pid_alive(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH; }

// Whether `dir` (of this host, owned by us) belongs to a worker that is gone. When it is, the
// lock taken to find out is returned in *held so it stays ours while the tree is removed.
bool stale(const fs::path& dir, long pid, int* held) {
  *held = -1;
  const int fd = ::open((dir / kLock).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    // No lock yet (its owner is between mkdir and rename, or died there): ask about the pid.
    return errno == ENOENT && !pid_alive(pid);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    *held = fd;
    return true;  // nobody holds it: its owner is dead
  }
  const int err = errno;
  ::close(fd);
  if (err == EWOULDBLOCK) return false;  // held: alive
  return !pid_alive(pid);                // no flock on this filesystem: the pid is all we have
}

void remove_stale(const fs::path& base) {
  const std::string me = safe(hostname());
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    std::string host;
    long pid = 0;
    if (!parse_entry(it->path().filename().string(), &host, &pid) || host != me) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
    int held = -1;
    if (!stale(it->path(), pid, &held)) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);  // best effort: another cleaner may be at it too
    if (held >= 0) ::close(held);
  }
}

std::string random_hex() {
  std::random_device rd;
  const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 12; ++i) s += digits[(v >> (4 * i)) & 0xf];
  return s;
}

}  // namespace

SpillDirectory SpillDirectory::create(const std::string& local_directory, const std::string& worker_name) {
  std::string root = local_directory;
  if (root.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    root = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(root, ec);  // a later chdir must not move it
  if (ec) throw cannot_use(root, ec.value());
  const fs::path base = absolute / "dtask-spill";
  if (!fs::is_directory(base, ec)) {
    fs::create_directories(absolute, ec);
    if (ec) throw cannot_use(root, ec.value());
    // Shared like /tmp: several users' workers may share one local_directory; the sticky bit keeps
    // each one's directory safe from the others.
    if (::mkdir(base.c_str(), 01777) == 0) {
      ::chmod(base.c_str(), 01777);  // mkdir's mode passed through the umask
    } else if (errno != EEXIST) {
      throw cannot_use(root, errno);
    }
  }
  remove_stale(base);

  const std::string prefix = safe(worker_name) + "@" + safe(hostname()) + "-" + std::to_string(::getpid()) + "-";
  for (int attempt = 0;; ++attempt) {
    const fs::path dir = base / (prefix + random_hex());
    if (::mkdir(dir.c_str(), 0700) != 0) {
      if (errno == EEXIST && attempt < 16) continue;
      throw cannot_use(root, errno);
    }
    // The lock becomes visible under its name only once it is held (rename), so a cleaner never
    // takes an unheld `.lock` of a live worker for a dead one's.
    const fs::path fresh = dir / kLockNew;
    const int fd = ::open(fresh.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      const int err = errno;
      fs::remove_all(dir, ec);
      throw cannot_use(root, err);
    }
    int lock_fd = fd;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      // A filesystem without flock: cleaners fall back to the pid in the name.
      ::close(fd);
      lock_fd = -1;
    }
    if (::rename(fresh.c_str(), (dir / kLock).c_str()) != 0) {
      const int err = errno;
      if (lock_fd >= 0) ::close(lock_fd);
      fs::remove_all(dir, ec);
      throw cannot_use(root, err);
    }
    return SpillDirectory(dir.string(), lock_fd);
  }
}

SpillDirectory::SpillDirectory(SpillDirectory&& o) noexcept : path_(std::move(o.path_)), lock_fd_(o.lock_fd_) {
  o.path_.clear();
  o.lock_fd_ = -1;
}

SpillDirectory& SpillDirectory::operator=(SpillDirectory&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    lock_fd_ = o.lock_fd_;
    o.path_.clear();
    o.lock_fd_ = -1;
  }
  return *this;
}

SpillDirectory::~SpillDirectory() { release(); }

void SpillDirectory::release() noexcept {
  if (!path_.empty()) {
    std::error_code ec;
    fs::remove_all(path_, ec);  // never throws: a destructor at exit
    path_.clear();
  }
  // Closed after the removal: until the tree is gone, the directory is still visibly alive.
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
}

}  // namespace dtask::worker

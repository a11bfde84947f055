// A worker's own spill directory under local_directory: unique, removed at exit, stale ones of crashed workers cleaned at start.
#pragma once

#include <string>

namespace dtask::worker {

// Owns `<local_directory>/dtask-spill/<name>@<host>-<pid>-<random>/` (mode 0700; an empty
// local_directory means $TMPDIR, else /tmp). create() first removes directories under
// `<local_directory>/dtask-spill/` left by workers of this host that are no longer running (a
// crash, kill -9, OOM), then makes a new one; the destructor removes it with its contents and
// never throws. Throws std::runtime_error naming the directory and the reason ("cannot use local
// directory /x for spilling: Permission denied") when it cannot be made or written.
//
// Which directories are stale: each holds a `.lock` file that its owner keeps flock()ed for its
// whole life (the descriptor is O_CLOEXEC and owned by this object; a fork() without exec would
// share the lock, so make the directory in the process that uses it). A directory is removed only
// if it is of this host (the name says so: flock may be local to a node on a shared filesystem),
// owned by this user, and its lock can be taken — or, with no `.lock` yet or a filesystem without
// flock, if its pid is not alive. A live worker's directory is never touched.
class SpillDirectory {
 public:
  static SpillDirectory create(const std::string& local_directory, const std::string& worker_name);
  SpillDirectory() = default;  // none: nothing to remove
  SpillDirectory(SpillDirectory&&) noexcept;
  SpillDirectory& operator=(SpillDirectory&&) noexcept;
  SpillDirectory(const SpillDirectory&) = delete;
  SpillDirectory& operator=(const SpillDirectory&) = delete;
  ~SpillDirectory();

  const std::string& path() const { return path_; }
  bool empty() const { return path_.empty(); }

 private:
  SpillDirectory(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}
  void release() noexcept;  // remove the tree, drop the lock
  std::string path_;
  int lock_fd_ = -1;  // the flock()ed `.lock` inside path_, held for this object's life
};

}  // namespace dtask::worker

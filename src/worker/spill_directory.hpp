// A worker's own spill directory under local_directory: unique, removed at exit, stale ones of crashed workers cleaned at start.
#pragma once

#include <string>

namespace dtask::worker {

// Owns `<local_directory>/dtask-spill/<name>-<pid>-<random>/` (mode 0700). create() first removes
// directories under `<local_directory>/dtask-spill/` left by workers of this host that are no
// longer running (a crash, kill -9, OOM), then makes a new one; the destructor removes it with
// its contents. Throws std::runtime_error with a message that names the directory and the reason
// ("cannot write to local directory /x: Permission denied") when it cannot be made or written.
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
  explicit SpillDirectory(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace dtask::worker

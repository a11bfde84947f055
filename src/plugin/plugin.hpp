// Loading task plugins: dlopen once, check the versioned descriptor, look tasks up by name.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <dtask/plugin_abi.h>

namespace dtask::plugin {

class Plugin;
struct LoadResult {
  std::shared_ptr<const Plugin> plugin;
  std::string error;  // why it could not be used: missing file, not a plugin, wrong version
  bool ok() const { return plugin != nullptr; }
};

using MainFn = int (*)(void* client, int argc, char** argv);

class Plugin {
 public:
  // Loads (once per process and path) and validates a plugin .so.
  static LoadResult load(const std::string& path);
  // The tasks compiled or linked into this process (LocalCluster without a plugin path).
  static std::shared_ptr<const Plugin> from_process();

  const dtask_task_v1* find(const std::string& task_name) const;
  std::vector<std::string> task_names() const;
  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  MainFn main_fn() const { return main_; }

 private:
  std::string name_;
  std::string path_;
  std::unordered_map<std::string, const dtask_task_v1*> tasks_;
  MainFn main_ = nullptr;
  void* handle_ = nullptr;  // kept open for the life of the process (tasks' code lives there)
};

// Checks a descriptor before anything in it is used; returns the problem, or empty.
std::string validate(const dtask_plugin_v1* d, const std::string& what);

}  // namespace dtask::plugin

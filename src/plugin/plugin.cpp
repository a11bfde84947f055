// Loading task plugins: dlopen once, check the versioned descriptor, look tasks up by name.
#include "plugin/plugin.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>

#include <dtask/task.hpp>

namespace dtask::detail {

namespace {
struct Registry {
  std::mutex mutex;
  std::vector<const dtask_plugin_v1*> plugins;
  std::unordered_map<const void*, std::string> names;
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: plugins may register during exit
  return *r;
}
}  // namespace

void register_plugin(const dtask_plugin_v1* plugin) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.plugins.push_back(plugin);
  for (std::size_t i = 0; i < plugin->n_tasks; ++i) r.names.emplace(plugin->tasks[i].fn, plugin->tasks[i].name);
}

const char* task_name_of(const void* fn) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.names.find(fn);
  return it == r.names.end() ? nullptr : it->second.c_str();
}

std::vector<const dtask_plugin_v1*> registered_plugins() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  return r.plugins;
}

}  // namespace dtask::detail

namespace dtask::plugin {

std::string validate(const dtask_plugin_v1* d, const std::string& what) {
  if (d == nullptr) return what + " returned no plugin descriptor";
  if (d->magic != DTASK_PLUGIN_MAGIC) return what + " is not a dtask plugin (bad magic number)";
  if (d->api_version != DTASK_PLUGIN_API_VERSION) {
    return what + " was built for dtask plugin API version " + std::to_string(d->api_version) +
           ", this runtime supports version " + std::to_string(DTASK_PLUGIN_API_VERSION) + ": rebuild the plugin";
  }
  if (d->call_frame_size != sizeof(detail::Call)) {
    return what + " was built against incompatible dtask headers (call frame size " +
           std::to_string(d->call_frame_size) + ", expected " + std::to_string(sizeof(detail::Call)) +
           "): rebuild the plugin";
  }
  if (d->n_tasks > 0 && d->tasks == nullptr) return what + " has a corrupt task table";
  return {};
}

LoadResult Plugin::load(const std::string& path_in) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const Plugin>> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(path_in); it != cache.end()) return {it->second, ""};

  std::string path = path_in;
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && path.find('/') == std::string::npos) path = "./" + path;  // dlopen would search LD paths
  if (!exists && path_in.find('/') != std::string::npos) return {nullptr, "plugin '" + path_in + "' not found"};
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    return {nullptr, "cannot load plugin '" + path_in + "': " + (err ? err : "unknown dlopen error")};
  }
  using DescFn = const dtask_plugin_v1* (*)();
  auto desc_fn = reinterpret_cast<DescFn>(::dlsym(handle, DTASK_PLUGIN_SYMBOL));
  if (!desc_fn) {
    return {nullptr, "'" + path_in + "' is not a dtask plugin: it exports no " DTASK_PLUGIN_SYMBOL
                     " (declare its tasks with DTASK_TASKS)"};
  }
  const dtask_plugin_v1* d = desc_fn();
  if (auto problem = validate(d, "plugin '" + path_in + "'"); !problem.empty()) return {nullptr, problem};
  auto p = std::make_shared<Plugin>();
  p->name_ = d->plugin_name ? d->plugin_name : path_in;
  p->path_ = path_in;
  p->handle_ = handle;
  for (std::size_t i = 0; i < d->n_tasks; ++i) p->tasks_.emplace(d->tasks[i].name, &d->tasks[i]);
  p->main_ = reinterpret_cast<MainFn>(::dlsym(handle, DTASK_MAIN_SYMBOL));
  cache.emplace(path_in, p);
  return {p, ""};
}

std::shared_ptr<const Plugin> Plugin::from_process() {
  auto p = std::make_shared<Plugin>();
  p->name_ = "(this program)";
  for (const auto* d : detail::registered_plugins()) {
    if (!validate(d, "a linked-in task table").empty()) continue;
    for (std::size_t i = 0; i < d->n_tasks; ++i) p->tasks_.emplace(d->tasks[i].name, &d->tasks[i]);
  }
  if (void* self = ::dlopen(nullptr, RTLD_NOW)) p->main_ = reinterpret_cast<MainFn>(::dlsym(self, DTASK_MAIN_SYMBOL));
  return p;
}

const dtask_task_v1* Plugin::find(const std::string& task_name) const {
  auto it = tasks_.find(task_name);
  return it == tasks_.end() ? nullptr : it->second;
}

std::vector<std::string> Plugin::task_names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : tasks_) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dtask::plugin

// Declaring tasks in a plugin: DTASK_TASKS(fn, ...) registers ordinary C++ functions by name.
#pragma once

#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <dtask/codec.hpp>
#include <dtask/plugin_abi.h>

namespace dtask {
class Client;
}

namespace dtask::detail {

// One argument as the worker hands it to a task: a single encoded value, or a list of encoded
// values (a std::vector<Future<T>> argument) that the task receives as std::vector<T>.
struct CallArg {
  const Payload* value = nullptr;
  std::vector<const Payload*> list;
  bool is_list = false;
};

// The call frame behind the opaque dtask_call: owned by the runtime, filled by the plugin.
struct Call {
  const void* fn = nullptr;
  std::span<const CallArg> args;
  Payload result;
  std::string error;
  bool ok = false;
};

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};

template <class P>
P decode_arg(const CallArg& a) {
  if (a.is_list) {
    if constexpr (is_std_vector<P>::value) {
      P out;
      out.reserve(a.list.size());
      for (const Payload* p : a.list) out.push_back(Codec<typename P::value_type>::decode(*p));
      return out;
    } else {
      throw std::runtime_error("a list of futures was passed where the task expects a single value");
    }
  }
  return Codec<P>::decode(*a.value);
}

template <class R, class... A, std::size_t... I>
void invoke_impl(Call& call, std::index_sequence<I...>) {
  auto fn = reinterpret_cast<R (*)(A...)>(const_cast<void*>(call.fn));
  std::tuple<std::decay_t<A>...> args{decode_arg<std::decay_t<A>>(call.args[I])...};
  if constexpr (std::is_void_v<R>) {
    fn(std::move(std::get<I>(args))...);
    call.result = Codec<std::nullptr_t>::encode(nullptr);
  } else {
    call.result = Codec<std::decay_t<R>>::encode(fn(std::move(std::get<I>(args))...));
  }
}

// The trampoline stored in the plugin's table. It is instantiated inside the plugin, so user
// exceptions never cross the C boundary: they become the call's error text.
template <class R, class... A>
void invoke(dtask_call* raw) {
  auto& call = *reinterpret_cast<Call*>(raw);
  span_keepalive().clear();  // the previous task's span arguments are gone
  try {
    if (call.args.size() != sizeof...(A)) {
      call.error = "expects " + std::to_string(sizeof...(A)) + " argument(s), got " +
                   std::to_string(call.args.size());
      call.ok = false;
      return;
    }
    invoke_impl<R, A...>(call, std::index_sequence_for<A...>{});
    call.ok = true;
  } catch (const std::exception& e) {
    call.error = e.what();
    call.ok = false;
  } catch (...) {
    call.error = "task threw a non-standard exception";
    call.ok = false;
  }
}

// Registers a plugin's table with this process so clients can name tasks by function pointer.
void register_plugin(const dtask_plugin_v1* plugin);
// The registered name of a task function, or nullptr.
const char* task_name_of(const void* fn);

class TaskTable {
 public:
  template <class... F>
  TaskTable(const char* plugin_name, std::string_view names, F*... fns) {
    split_names(names);
    (add(fns), ...);
    descriptor_.magic = DTASK_PLUGIN_MAGIC;
    descriptor_.api_version = DTASK_PLUGIN_API_VERSION;
    descriptor_.call_frame_size = sizeof(Call);
    descriptor_.reserved = 0;
    descriptor_.plugin_name = plugin_name;
    descriptor_.n_tasks = entries_.size();
    descriptor_.tasks = entries_.data();
    register_plugin(&descriptor_);
  }
  TaskTable(const TaskTable&) = delete;
  TaskTable& operator=(const TaskTable&) = delete;
  const dtask_plugin_v1* descriptor() const { return &descriptor_; }

 private:
  template <class R, class... A>
  void add(R (*fn)(A...)) {
    dtask_task_v1 e{};
    e.name = names_.at(entries_.size()).c_str();
    e.fn = reinterpret_cast<const void*>(fn);
    e.arity = sizeof...(A);
    e.invoke = &invoke<R, A...>;
    entries_.push_back(e);
  }
  void split_names(std::string_view all) {
    std::size_t start = 0;
    while (start <= all.size()) {
      auto comma = all.find(',', start);
      auto part = all.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      while (!part.empty() && (part.front() == ' ' || part.front() == '\n' || part.front() == '\t')) part.remove_prefix(1);
      while (!part.empty() && (part.back() == ' ' || part.back() == '\n' || part.back() == '\t')) part.remove_suffix(1);
      if (!part.empty() && part.front() == '&') part.remove_prefix(1);
      names_.emplace_back(part);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    entries_.reserve(names_.size());
  }
  std::vector<std::string> names_;
  std::vector<dtask_task_v1> entries_;
  dtask_plugin_v1 descriptor_{};
};

}  // namespace dtask::detail

#ifndef DTASK_PLUGIN_NAME
#define DTASK_PLUGIN_NAME "dtask-plugin"
#endif

// DTASK_TASKS(inc, dec, add); — one per plugin. Registers the functions under their own names
// and exports the versioned descriptor the runtime checks before use.
#define DTASK_TASKS(...)                                                                          \
  namespace {                                                                                     \
  const ::dtask::detail::TaskTable dtask_task_table_{DTASK_PLUGIN_NAME, #__VA_ARGS__, __VA_ARGS__}; \
  }                                                                                               \
  extern "C" __attribute__((visibility("default"))) const dtask_plugin_v1*                       \
  dtask_plugin_descriptor_v1(void) {                                                              \
    return dtask_task_table_.descriptor();                                                        \
  }                                                                                               \
  static_assert(true, "")

// DTASK_MAIN(fn) with `int fn(dtask::Client&, int argc, char** argv)`: the client code that
// `dtask-run plugin.so` runs on rank 1.
#define DTASK_MAIN(fn)                                                                            \
  extern "C" __attribute__((visibility("default"))) int dtask_plugin_main_v1(                     \
      void* client, int argc, char** argv) {                                                      \
    return fn(*static_cast<::dtask::Client*>(client), argc, argv);                                \
  }                                                                                               \
  static_assert(true, "")

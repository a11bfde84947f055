// The scheduler's task storage: slot allocation, the arena layout of keys/inputs/arguments, side tables.
#include "scheduler/task_table.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>

namespace dtask::scheduler {

using namespace protocol;

namespace {

// Arguments in the arena are LEB128-style varints: most lengths and counts fit one byte.
std::size_t varint_size(std::size_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
char* put_varint(char* p, std::size_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
std::size_t get_varint(const char*& p) {
  std::size_t v = 0;
  for (int shift = 0;; shift += 7) {
    auto b = static_cast<unsigned char>(*p++);
    v |= static_cast<std::size_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return v;
  }
}

}  // namespace

std::uint32_t TaskTable::intern_func(const std::string& name) {
  auto it = func_index_.find(name);
  if (it != func_index_.end()) return it->second;
  auto idx = static_cast<std::uint32_t>(func_names_.size());
  func_names_.push_back(name);
  func_index_.emplace(name, idx);
  return idx;
}

std::uint32_t TaskTable::allocate_slot() {
  if (!free_slots_.empty()) {
    auto slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  auto slot = static_cast<std::uint32_t>(tasks_.size());
  tasks_.emplace_back();
  tasks_.back().id = make_task_id(slot, 0);
  return slot;
}

TaskExtras& TaskTable::extras_for(std::uint32_t slot) {
  tasks_[slot].has_extras = true;
  return extras_[slot];
}

std::uint32_t TaskTable::add(TaskSpec& spec, std::string& bad) {
  std::uint32_t slot = allocate_slot();
  Task& t = tasks_[slot];
  TaskId id = t.id;
  t = Task{};
  t.id = id;
  t.state = TaskState::released;
  t.func = intern_func(spec.func);
  t.priority = spec.priority;
  t.retries_left = spec.retries;
  t.allow_other = spec.allow_other_workers;
  if (!spec.workers.empty() || !spec.resources.empty()) {
    auto& ex = extras_for(slot);
    ex.restrictions = std::move(spec.workers);
    ex.resources = std::move(spec.resources);
  }
  store_spec(slot, spec, bad);
  return slot;
}

void TaskTable::free(std::uint32_t slot) {
  Task& t = tasks_[slot];
  key_index_.erase(key_of(t), slot);
  arena_.release(t.blob);
  if (t.has_extras) extras_.erase(slot);
  failures_.erase(slot);
  std::uint32_t gen = generation_of(t.id) + 1;
  t = Task{};
  t.id = make_task_id(slot, gen);
  t.state = TaskState::forgotten;
  free_slots_.push_back(slot);
}

void TaskTable::store_spec(std::uint32_t slot, TaskSpec& spec, std::string& bad) {
  auto& refs = scratch_refs_;
  auto& deps = scratch_deps_;
  refs.clear();
  deps.clear();
  std::unordered_set<std::uint32_t> seen;  // only for long input lists, where a scan would be quadratic
  bool frames = false;
  std::size_t args_bytes = varint_size(spec.args.size());
  for (const auto& a : spec.args) {
    args_bytes += 1;
    if (a.kind == ClientArg::value) {
      if (!a.data.frames.empty()) frames = true;
      args_bytes += varint_size(a.data.header.size()) + a.data.header.size();
      continue;
    }
    args_bytes += varint_size(a.refs.size()) + 4 * a.refs.size();
    for (const auto& key : a.refs) {
      std::uint32_t d = slot_of_key(key);  // this task's own key is not indexed yet: a self-reference is unknown
      if (d == kNoSlot) {
        if (bad.empty()) bad = "depends on unknown key '" + key + "' (never submitted, or already released)";
        refs.push_back(kNoSlot);
        continue;
      }
      refs.push_back(d);
      bool dup = deps.size() < 16 ? std::find(deps.begin(), deps.end(), d) != deps.end() : false;
      if (deps.size() == 16 && seen.empty()) seen.insert(deps.begin(), deps.end());
      if (deps.size() >= 16) dup = !seen.insert(d).second;
      if (!dup) deps.push_back(d);
    }
  }
  if (frames) args_bytes = 0;

  Task& t = tasks_[slot];
  t.blob = arena_.allocate(deps.size() * 4 + spec.key.size() + args_bytes);
  t.n_deps = static_cast<std::uint32_t>(deps.size());
  t.key_size = static_cast<std::uint32_t>(spec.key.size());
  char* p = arena_.data(t.blob);
  if (!deps.empty()) std::memcpy(p, deps.data(), deps.size() * 4);
  p += deps.size() * 4;
  if (!spec.key.empty()) std::memcpy(p, spec.key.data(), spec.key.size());
  p += spec.key.size();
  std::size_t r = 0;
  if (frames) {
    TaskExtras& ex = extras_for(slot);
    ex.args_here = true;
    auto& args = ex.args;
    args.reserve(spec.args.size());
    for (auto& a : spec.args) {
      TaskArg ta;
      ta.kind = a.kind;
      if (a.kind == ClientArg::value) {
        ta.data = std::move(a.data);
      } else {
        ta.refs.reserve(a.refs.size());
        for (std::size_t i = 0; i < a.refs.size(); ++i, ++r) {
          ta.refs.push_back(refs[r] == kNoSlot ? TaskId{} : tasks_[refs[r]].id);
        }
      }
      args.push_back(std::move(ta));
    }
  } else {
    p = put_varint(p, spec.args.size());
    for (const auto& a : spec.args) {
      *p++ = static_cast<char>(a.kind);
      if (a.kind == ClientArg::value) {
        p = put_varint(p, a.data.header.size());
        if (!a.data.header.empty()) std::memcpy(p, a.data.header.data(), a.data.header.size());
        p += a.data.header.size();
      } else {
        p = put_varint(p, a.refs.size());
        if (!a.refs.empty()) std::memcpy(p, refs.data() + r, a.refs.size() * 4);
        p += a.refs.size() * 4;
        r += a.refs.size();
      }
    }
  }
  key_index_.insert(key_of(t), slot);
}

std::vector<TaskArg> TaskTable::args_of(const Task& t) const {
  if (t.has_extras) {
    const TaskExtras& ex = extras_.at(slot_of(t.id));
    if (ex.args_here) return ex.args;
  }
  std::vector<TaskArg> args;
  if (t.blob.empty()) return args;
  const char* p = arena_.data(t.blob) + t.n_deps * 4 + t.key_size;
  std::size_t n = get_varint(p);
  args.resize(n);
  for (auto& a : args) {
    a.kind = static_cast<std::uint8_t>(*p++);
    if (a.kind == TaskArg::value) {
      std::size_t len = get_varint(p);
      a.data.header.assign(p, len);
      p += len;
    } else {
      std::size_t refs = get_varint(p);
      a.refs.reserve(refs);
      for (std::size_t i = 0; i < refs; ++i, p += 4) {
        std::uint32_t d;
        std::memcpy(&d, p, 4);
        a.refs.push_back(d == kNoSlot ? TaskId{} : tasks_[d].id);
      }
    }
  }
  return args;
}

}  // namespace dtask::scheduler

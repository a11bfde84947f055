// FastPaths (include/dtask/types.hpp): parsing the one switch for every latency shortcut.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <dtask/types.hpp>

namespace dtask {

namespace {
struct Named {
  const char* name;
  bool FastPaths::*flag;
};
constexpr Named kNames[] = {
    {"push_results", &FastPaths::push_results},
    {"hold_task_done", &FastPaths::hold_task_done},
    {"early_start", &FastPaths::early_start},
    {"run_on_loop", &FastPaths::run_on_loop},
    {"spin_wait", &FastPaths::spin_wait},
};

std::string known_names() {
  std::string out = "all, none";
  for (const auto& n : kNames) out += std::string(", ") + n.name;
  return out;
}
}  // namespace

FastPaths FastPaths::parse(const std::string& spec) {
  if (spec.empty() || spec == "all" || spec == "on" || spec == "1") return all();
  if (spec == "none" || spec == "off" || spec == "0") return none();
  FastPaths out = all();
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    if (item.empty()) continue;
    bool on = true;
    if (item[0] == '-' || item[0] == '+') {
      on = item[0] == '+';
      item.erase(0, 1);
    }
    if (item == "all" || item == "none") {
      out = (item == "all") == on ? all() : none();
      continue;
    }
    bool found = false;
    for (const auto& n : kNames) {
      if (item == n.name) {
        out.*(n.flag) = on;
        found = true;
      }
    }
    if (!found) {
      throw std::invalid_argument("unknown fast path '" + item + "' in '" + spec + "' (known: " + known_names() + ")");
    }
  }
  return out;
}

FastPaths FastPaths::from_environment() {
  const char* env = std::getenv("DTASK_FAST_PATHS");
  if (!env) return all();
  try {
    return parse(env);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("DTASK_FAST_PATHS: ") + e.what());
  }
}

std::string FastPaths::to_string() const {
  if (*this == all()) return "all";
  if (*this == none()) return "none";
  std::string out;
  for (const auto& n : kNames) {
    if (!(this->*(n.flag))) out += (out.empty() ? "-" : ",-") + std::string(n.name);
  }
  return out;
}

}  // namespace dtask

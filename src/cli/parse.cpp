// Parsing helpers shared by the command-line tools: resource lists, the fast-path switch (sizes and durations: common/units).
#include "cli/parse.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace dtask::cli {

std::optional<protocol::Resources> parse_resources(const std::string& text) {
  protocol::Resources out;
  if (text.empty()) return out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) return std::nullopt;
    char* end = nullptr;
    std::string num = item.substr(eq + 1);
    double v = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || v < 0) return std::nullopt;
    out.emplace_back(item.substr(0, eq), v);
  }
  return out;
}

const char* const kFastPathsHelp =
    "latency shortcuts to take: all, none, or a list of push_results, hold_task_done, early_start, "
    "run_on_loop, spin_wait, each with '-' (off) or '+' (on), applied to all; write a list that starts "
    "with '-' as --fast-paths=-early_start,-run_on_loop (default: $DTASK_FAST_PATHS, else all)";

FastPathsChoice parse_fast_paths(const std::string& spec) {
  FastPathsChoice out;
  try {
    out.value = spec.empty() ? FastPaths::from_environment() : FastPaths::parse(spec);
  } catch (const std::invalid_argument& e) {
    out.error = spec.empty() ? e.what() : std::string("--fast-paths: ") + e.what();
  }
  return out;
}

std::string fast_paths_environment_error() {
  try {
    FastPaths::from_environment();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

}  // namespace dtask::cli

// Parsing helpers shared by the command-line tools: resource lists, the fast-path switch (sizes and durations: common/units).
#include "cli/parse.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
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

namespace {
// "0.8" -> 0.8; "0", "false", "off", "none" -> 0 (off, as Dask's config writes False); nullopt otherwise.
std::optional<double> parse_fraction(const std::string& text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "false" || lower == "off" || lower == "none") return 0.0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1) return std::nullopt;
  return v;
}
}  // namespace

MemoryThresholdsChoice parse_memory_thresholds(const MemoryFlags& flags) {
  MemoryThresholdsChoice out;
  struct Flag {
    const char* name;
    const std::string& text;
    double& value;
  };
  const Flag all[] = {{"--memory-target", flags.target, out.value.target},
                      {"--memory-spill", flags.spill, out.value.spill},
                      {"--memory-pause", flags.pause, out.value.pause},
                      {"--memory-terminate", flags.terminate, out.value.terminate}};
  for (const Flag& f : all) {
    if (f.text.empty()) continue;
    const auto v = parse_fraction(f.text);
    if (!v) {
      out.error = std::string("cannot read ") + f.name + " '" + f.text +
                  "': expected a fraction of --memory-limit like 0.8, or 0/false to turn it off";
      return out;
    }
    f.value = *v;
  }
  try {
    worker::validate(out.value);
  } catch (const std::invalid_argument& e) {
    out.error = std::string("--memory-target/-spill/-pause/-terminate: ") + e.what();
    // A default in the way of what was given: say so, or the message names a flag nobody wrote.
    const worker::MemoryThresholds defaults;
    const double default_of[] = {defaults.target, defaults.spill, defaults.pause, defaults.terminate};
    for (std::size_t i = 0; i < 4; ++i) {
      const std::string field = all[i].name + std::strlen("--memory-");
      if (all[i].text.empty() && out.error.find(" " + field + " (") != std::string::npos) {
        std::ostringstream d;
        d << default_of[i];
        out.error += "; " + std::string(all[i].name) + " was not given and defaults to " + d.str() +
                     " (set it, or 0 to turn it off)";
      }
    }
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

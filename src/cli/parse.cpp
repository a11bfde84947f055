// Parsing helpers shared by the command-line tools: byte sizes, resource lists, the fast-path switch.
#include "cli/parse.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace dtask::cli {

std::optional<std::uint64_t> parse_bytes(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || value < 0 || !std::isfinite(value)) return std::nullopt;
  std::string unit(end);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.erase(unit.begin());
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "kb" || unit == "k") mult = 1e3;
  else if (unit == "mb" || unit == "m") mult = 1e6;
  else if (unit == "gb" || unit == "g") mult = 1e9;
  else if (unit == "tb" || unit == "t") mult = 1e12;
  else if (unit == "kib") mult = 1024.0;
  else if (unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else return std::nullopt;
  return static_cast<std::uint64_t>(value * mult);
}

std::optional<std::uint64_t> parse_duration_ms(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || value < 0 || !std::isfinite(value)) return std::nullopt;
  std::string unit(end);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.erase(unit.begin());
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1000;
  if (unit.empty() || unit == "s") mult = 1000;
  else if (unit == "ms") mult = 1;
  else if (unit == "m" || unit == "min") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  else return std::nullopt;
  return static_cast<std::uint64_t>(value * mult);
}

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

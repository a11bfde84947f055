// Byte sizes and durations as users write them ("24GB", "4GiB", "55m"): one parser for the tools and the library.
#include "common/units.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <utility>

namespace dtask {

namespace {
// "<number><space?><unit>" with a unit from `units` (lower case; "" may be one of them) -> the
// number times that unit's multiplier; nullopt if malformed, negative or of an unknown unit.
std::optional<std::uint64_t> scaled(const std::string& text,
                                    std::initializer_list<std::pair<const char*, double>> units) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || value < 0 || !std::isfinite(value)) return std::nullopt;
  std::string unit(end);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.erase(unit.begin());
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [name, mult] : units) {
    if (unit == name) return static_cast<std::uint64_t>(value * mult);
  }
  return std::nullopt;
}
}  // namespace

std::optional<std::uint64_t> parse_bytes(const std::string& text) {
  constexpr double kKi = 1024.0;
  return scaled(text, {{"", 1},
                       {"b", 1},
                       {"k", 1e3},
                       {"kb", 1e3},
                       {"m", 1e6},
                       {"mb", 1e6},
                       {"g", 1e9},
                       {"gb", 1e9},
                       {"t", 1e12},
                       {"tb", 1e12},
                       {"kib", kKi},
                       {"mib", kKi * kKi},
                       {"gib", kKi * kKi * kKi},
                       {"tib", kKi * kKi * kKi * kKi}});
}

std::optional<std::uint64_t> parse_duration_ms(const std::string& text) {
  return scaled(text, {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60'000}, {"min", 60'000}, {"h", 3'600'000}});
}

}  // namespace dtask

// Byte sizes and durations as users write them ("24GB", "4GiB", "55m"): one parser for the tools and the library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dtask {

// "4GiB", "500MB", "1e9", "0" -> bytes (k/M/G/T decimal, KiB/MiB/GiB/TiB binary, case-insensitive);
// nullopt if malformed or negative.
std::optional<std::uint64_t> parse_bytes(const std::string& text);
// "2s", "500ms", "55m", "1.5h", "30" (seconds) -> milliseconds; nullopt if malformed or negative.
std::optional<std::uint64_t> parse_duration_ms(const std::string& text);

}  // namespace dtask

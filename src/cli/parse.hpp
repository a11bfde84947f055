// Parsing helpers shared by the command-line tools: byte sizes and resource lists.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "protocol/messages.hpp"

namespace dtask::cli {

// "4GiB", "500MB", "1e9", "0" -> bytes; nullopt if malformed.
std::optional<std::uint64_t> parse_bytes(const std::string& text);
// "GPU=2,MEM=1e9" -> [(GPU,2),(MEM,1e9)]; nullopt if malformed.
std::optional<protocol::Resources> parse_resources(const std::string& text);

}  // namespace dtask::cli

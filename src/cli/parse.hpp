// Parsing helpers shared by the command-line tools: byte sizes, resource lists, the fast-path switch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <dtask/types.hpp>

#include "common/units.hpp"
#include "protocol/messages.hpp"
#include "worker/memory_policy.hpp"

namespace dtask::cli {

using dtask::parse_bytes;        // common/units.hpp
using dtask::parse_duration_ms;
// "GPU=2,MEM=1e9" -> [(GPU,2),(MEM,1e9)]; nullopt if malformed.
std::optional<protocol::Resources> parse_resources(const std::string& text);

// The memory flags of dtask-worker and dtask-run as written (memory_flags.hpp adds them to a tool).
struct MemoryFlags {
  std::string limit = "auto";                   // --memory-limit: 0 | auto | size | fraction
  std::string target, spill, pause, terminate;  // --memory-*: a fraction, or 0/false/off; empty: the default
};
// The four thresholds from the flags, validated (worker::validate). Never throws: `error` names
// the flag ("--memory-pause: ...").
struct MemoryThresholdsChoice {
  worker::MemoryThresholds value;
  std::string error;
  bool ok() const { return error.empty(); }
};
MemoryThresholdsChoice parse_memory_thresholds(const MemoryFlags& flags);

// The --fast-paths option's help text, the same for every tool.
extern const char* const kFastPathsHelp;
// `--fast-paths SPEC` (FastPaths::parse); an empty SPEC means the environment's choice
// (DTASK_FAST_PATHS, all when unset). Never throws: a SPEC or a DTASK_FAST_PATHS it does not
// understand comes back as `error`, naming the culprit and the known names.
struct FastPathsChoice {
  FastPaths value;
  std::string error;
  bool ok() const { return error.empty(); }
};
FastPathsChoice parse_fast_paths(const std::string& spec);
// Every options struct takes its default from DTASK_FAST_PATHS and would throw while being
// built: tools call this first, so a bad value is an error message (exit 2), not a crash.
// Empty when the environment is fine.
std::string fast_paths_environment_error();

}  // namespace dtask::cli

// The --memory-limit and --memory-target/-spill/-pause/-terminate options, the same words in dtask-worker and dtask-run.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/parse.hpp"

namespace dtask::cli {

inline void add_memory_flags(CLI::App& app, MemoryFlags& flags, const std::string& limit_help) {
  app.add_option("--memory-limit", flags.limit, limit_help)->capture_default_str();
  app.add_option("--memory-target", flags.target,
                 "fraction of --memory-limit held in results above which the least recently used are spilled to "
                 "--local-directory (default 0.6; 0/false: off)");
  app.add_option("--memory-spill", flags.spill,
                 "fraction of --memory-limit in process memory above which more is spilled (default 0.7; 0/false: off)");
  app.add_option("--memory-pause", flags.pause,
                 "fraction of --memory-limit in process memory above which the worker starts no new task "
                 "(default 0.8; 0/false: off)");
  app.add_option("--memory-terminate", flags.terminate,
                 "fraction of --memory-limit in process memory above which the worker is killed and restarted "
                 "(default 0.95; 0/false: off)");
}

}  // namespace dtask::cli

// SIGTERM/SIGINT to an orderly stop: the handler only calls a stop function that is signal-safe.
#pragma once

#include <csignal>

namespace dtask::cli {

using StopFn = void (*)(int exit_code);

// Installs handlers for SIGTERM and SIGINT that call `stop(128 + signal)` once.
void on_termination(StopFn stop);

}  // namespace dtask::cli

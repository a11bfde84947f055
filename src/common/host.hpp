// This machine's name, for logs, scheduler files and worker names (common: no sockets needed).
#pragma once

#include <string>

namespace dtask {

// gethostname(), or "unknown".
std::string hostname();

}  // namespace dtask

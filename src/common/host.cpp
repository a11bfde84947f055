// This machine's name (common/host.hpp).
#include "common/host.hpp"

#include <unistd.h>

namespace dtask {

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace dtask

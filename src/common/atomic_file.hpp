// Writing a file so readers see the old one or the whole new one, never a part: temp + rename.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace dtask {

// Writes `content` to `path` through `path.tmp.<pid>` created with `mode` (so a 0600 file holding
// keys is never readable by others, not even for a moment) and renamed over `path`. Returns ""
// on success, else why it failed (strerror); the temporary file is removed.
std::string write_file_atomically(const std::string& path, std::string_view content, mode_t mode);

}  // namespace dtask

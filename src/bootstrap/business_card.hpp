// The small "business card" rank 0 broadcasts, and the pipe messages between a rank and its child.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

namespace dtask::bootstrap {

// Fixed-size and trivially copyable so MPI can broadcast it as bytes.
struct BusinessCard {
  char magic[8];
  char endpoint[256];
  char server_public[41], server_secret[41];
  char client_public[41], client_secret[41];
  char job_id[64];
};

inline void copy_field(char* dst, std::size_t cap, const std::string& src) {
  std::strncpy(dst, src.c_str(), cap - 1);
  dst[cap - 1] = '\0';
}

// Parent (MPI rank) -> child: who we are, then (once everyone bootstrapped) the card.
struct StartInfo {
  int rank;
  int size;
};
struct GoInfo {
  int go;  // 1: run; 0: another rank failed, exit quietly
  BusinessCard card;
};
// Child -> parent: whether this rank can take part (interface found, sockets bound), and for
// rank 0 the card of the scheduler it bound.
struct ChildReport {
  int ok;
  char message[1024];
  BusinessCard card;
};

inline bool write_all(int fd, const void* data, std::size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}
inline bool read_all(int fd, void* data, std::size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace dtask::bootstrap

// dtask::progress's loop: waits on the futures with a timeout and writes what ProgressBar decides.
//
// Runs on the calling user thread only; it takes ClientCore::mutex_ through count_done and
// wait_all (connection.hpp), and writes nothing but the caller's FILE.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "client/connection.hpp"
#include "client/progress_bar.hpp"

namespace dtask::detail {

namespace {
// The terminal's width, 0 when it cannot be told (not a terminal, or a pty nobody sized).
std::size_t columns_of(int fd) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

void write_out(std::FILE* out, const std::string& text) {
  if (text.empty()) return;
  // A full disk or a closed pipe must not stop the job: what cannot be drawn is not drawn.
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}
}  // namespace

void progress(const std::vector<const FutureRef*>& refs, const ProgressOptions& options) {
  std::FILE* out = options.out ? options.out : stdout;
  const int fd = ::fileno(out);
  const bool terminal = options.terminal ? *options.terminal : (fd >= 0 && ::isatty(fd) == 1);
  ProgressBar bar(ProgressBar::Style{terminal, options.interval, options.width, terminal && fd >= 0 ? columns_of(fd) : 0});

  std::vector<FutureState*> states;
  states.reserve(refs.size());
  for (const FutureRef* r : refs) states.push_back(&r->state());
  ClientCore* core = refs.empty() ? nullptr : &refs.front()->core();
  auto count = [&] { return core ? core->count_done(states) : ProgressCounts{}; };

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  };
  ProgressCounts c = count();
  while (c.done < c.total) {
    write_out(out, bar.update(c, elapsed()));
    // Sleeps on the client's condition variable until every future is done or the next drawing
    // is due; at least 1 ms, so a due-now answer cannot turn this into a spin.
    const auto wait = std::max(bar.wait_before_next(elapsed()), std::chrono::milliseconds(1));
    core->wait_all(states, wait);
    c = count();
  }
  write_out(out, bar.finish(c, elapsed()));
}

}  // namespace dtask::detail

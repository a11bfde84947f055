// The pure part of dtask::progress: the text of a progress line and when to draw it (no clock, no I/O).
//
// progress.cpp owns the clock, the waiting and the FILE; everything it writes comes from here, so
// the unit tests (tests/unit/test_progress_bar.cpp) pin what a terminal and a batch log receive.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace dtask::detail {

// How far a set of futures got. `done` counts every settled one, `erred` included (a failed or
// cancelled future is done: nothing more will happen to it).
struct ProgressCounts {
  std::size_t done = 0;
  std::size_t erred = 0;
  std::size_t total = 0;
  bool operator==(const ProgressCounts&) const = default;
};

// A terminal's bar is redrawn at most this often.
inline constexpr std::chrono::milliseconds kProgressRedraw{100};

// "3.2 s" below a minute, "2m05s" below an hour, "1h02m" above.
std::string format_elapsed(std::chrono::milliseconds elapsed);

// One progress line without '\r' or '\n':
//   "[########                ]  34% | 340/1000 done | 2 erred | 3.2 s"
// `bar_width` is the number of cells between the brackets; 0 leaves the bar out. The percentage
// is rounded down, so 100% means every future is done; no futures at all count as 100%.
std::string format_progress(const ProgressCounts& c, std::chrono::milliseconds elapsed, std::size_t bar_width);

// What to write, and when, for one progress() call. Two styles:
//   terminal  one line redrawn in place: "\r" + line (padded with spaces over a longer previous
//             one), at most every kProgressRedraw and only when its text changed; finish() ends it
//             with "\n".
//   log       (output is a file or a pipe) a whole line every `interval`, and a final one; never a
//             '\r' or an escape sequence.
// Times are the caller's: elapsed since progress() started.
class ProgressBar {
 public:
  struct Style {
    bool terminal = false;
    std::chrono::milliseconds interval{10000};  // log style: one line this often (at least kProgressRedraw)
    std::size_t bar_width = 40;
    std::size_t columns = 0;  // the terminal's width (0: unknown); the bar shrinks to fit in it
  };
  explicit ProgressBar(Style style);

  // What to write now for these counts (empty: nothing is due).
  std::string update(const ProgressCounts& c, std::chrono::milliseconds elapsed);
  // The last line, always written once (empty after the first call).
  std::string finish(const ProgressCounts& c, std::chrono::milliseconds elapsed);
  // How long the caller may sleep from `elapsed` before update() can have something to draw.
  std::chrono::milliseconds wait_before_next(std::chrono::milliseconds elapsed) const;

 private:
  std::string line(const ProgressCounts& c, std::chrono::milliseconds elapsed) const;
  std::string redraw(const std::string& text);

  Style style_;
  bool drawn_ = false;    // update() wrote something already
  bool finished_ = false;
  std::chrono::milliseconds last_draw_{0};
  std::string last_text_;      // terminal: the line on screen, to skip identical redraws
  std::size_t last_length_ = 0;  // terminal: its length, to blank a longer one
};

}  // namespace dtask::detail

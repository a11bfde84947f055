// The pure part of dtask::progress: the text of a progress line and when to draw it (see progress_bar.hpp).
#include "client/progress_bar.hpp"

#include <algorithm>
#include <cstdio>

namespace dtask::detail {

namespace {
// A bar narrower than this says nothing the percentage does not; a narrow terminal gets none.
constexpr std::size_t kMinBarCells = 5;
}  // namespace

std::string format_elapsed(std::chrono::milliseconds elapsed) {
  const long long ms = std::max<long long>(0, elapsed.count());
  char buf[48];
  if (ms < 60'000) {
    // Tenths, rounded down: the display never runs ahead of the clock.
    std::snprintf(buf, sizeof buf, "%lld.%lld s", ms / 1000, (ms % 1000) / 100);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, (ms / 1000) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, (ms / 60'000) % 60);
  }
  return buf;
}

std::string format_progress(const ProgressCounts& c, std::chrono::milliseconds elapsed, std::size_t bar_width) {
  // done may exceed total only through a caller's mistake; the line must not overflow the bar.
  const std::size_t done = std::min(c.done, c.total);
  const std::size_t percent = c.total == 0 ? 100 : done * 100 / c.total;
  std::string out;
  if (bar_width > 0) {
    const std::size_t filled = c.total == 0 ? bar_width : done * bar_width / c.total;
    out += '[';
    out.append(filled, '#');
    out.append(bar_width - filled, ' ');
    out += "] ";
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "%3zu%% | %zu/%zu done | %zu erred | %s", percent, done, c.total, c.erred,
                format_elapsed(elapsed).c_str());
  out += buf;
  return out;
}

ProgressBar::ProgressBar(Style style) : style_(style) {
  style_.interval = std::max(style_.interval, kProgressRedraw);
}

std::string ProgressBar::line(const ProgressCounts& c, std::chrono::milliseconds elapsed) const {
  std::size_t bar = style_.bar_width;
  if (style_.terminal && style_.columns > 0 && bar > 0) {
    // Stay off the last column: writing there makes some terminals wrap, and '\r' then redraws
    // on the next row.
    const std::size_t room = style_.columns - 1;
    const std::size_t rest = format_progress(c, elapsed, 0).size() + 3;  // "[" + "] "
    bar = room > rest ? std::min(bar, room - rest) : 0;
    if (bar < kMinBarCells) bar = 0;
  }
  return format_progress(c, elapsed, bar);
}

std::string ProgressBar::redraw(const std::string& text) {
  std::string out = "\r" + text;
  if (last_length_ > text.size()) out.append(last_length_ - text.size(), ' ');
  last_length_ = text.size();
  last_text_ = text;
  return out;
}

std::string ProgressBar::update(const ProgressCounts& c, std::chrono::milliseconds elapsed) {
  if (finished_) return {};
  if (style_.terminal) {
    if (drawn_ && elapsed < last_draw_ + kProgressRedraw) return {};
    drawn_ = true;
    last_draw_ = elapsed;  // looked now, drawn or not: the next look is kProgressRedraw away
    std::string text = line(c, elapsed);
    if (text == last_text_) return {};
    return redraw(text);
  }
  if (elapsed < last_draw_ + style_.interval) return {};
  drawn_ = true;
  last_draw_ = elapsed;
  return line(c, elapsed) + "\n";
}

std::string ProgressBar::finish(const ProgressCounts& c, std::chrono::milliseconds elapsed) {
  if (finished_) return {};
  finished_ = true;
  if (style_.terminal) return redraw(line(c, elapsed)) + "\n";
  return line(c, elapsed) + "\n";
}

std::chrono::milliseconds ProgressBar::wait_before_next(std::chrono::milliseconds elapsed) const {
  if (style_.terminal && !drawn_) return std::chrono::milliseconds(0);
  const auto due = last_draw_ + (style_.terminal ? kProgressRedraw : style_.interval);
  return due > elapsed ? due - elapsed : std::chrono::milliseconds(0);
}

}  // namespace dtask::detail

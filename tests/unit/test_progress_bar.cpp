// dtask::progress's pure part: the line's text, and what a terminal and a batch log receive when (times are inputs).
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "client/progress_bar.hpp"

using dtask::detail::format_elapsed;
using dtask::detail::format_progress;
using dtask::detail::ProgressBar;
using dtask::detail::ProgressCounts;
using ms = std::chrono::milliseconds;

namespace {

ProgressBar terminal_bar(std::size_t width = 24, std::size_t columns = 0) {
  return ProgressBar(ProgressBar::Style{true, ms(10000), width, columns});
}
ProgressBar log_bar(ms interval = ms(10000)) { return ProgressBar(ProgressBar::Style{false, interval, 24, 0}); }

bool has(const std::string& s, char c) { return s.find(c) != std::string::npos; }

}  // namespace

TEST_CASE("ProgressBar.LineShowsBarPercentCountsErredAndTime") {
  CHECK(format_progress({340, 2, 1000}, ms(3250), 24) ==
        "[########                ]  34% | 340/1000 done | 2 erred | 3.2 s");
  CHECK(format_progress({1000, 0, 1000}, ms(61000), 10) == "[##########] 100% | 1000/1000 done | 0 erred | 1m01s");
  // No bar at width 0.
  CHECK(format_progress({1, 1, 4}, ms(0), 0) == " 25% | 1/4 done | 1 erred | 0.0 s");
}

TEST_CASE("ProgressBar.PercentRoundsDownSoOnlyAllDoneIs100") {
  CHECK(format_progress({999, 0, 1000}, ms(0), 0).rfind(" 99%", 0) == 0);
  CHECK(format_progress({999, 0, 1000}, ms(0), 10).find("#########]") == std::string::npos);
  // Nothing to wait for is complete; a count beyond the total cannot overflow the bar.
  CHECK(format_progress({0, 0, 0}, ms(0), 4) == "[####] 100% | 0/0 done | 0 erred | 0.0 s");
  CHECK(format_progress({7, 0, 5}, ms(0), 5) == "[#####] 100% | 5/5 done | 0 erred | 0.0 s");
}

TEST_CASE("ProgressBar.ElapsedTimeFormats") {
  CHECK(format_elapsed(ms(0)) == "0.0 s");
  CHECK(format_elapsed(ms(59999)) == "59.9 s");
  CHECK(format_elapsed(ms(60000)) == "1m00s");
  CHECK(format_elapsed(ms(3599000)) == "59m59s");
  CHECK(format_elapsed(ms(3600000 + 2 * 60000)) == "1h02m");
  CHECK(format_elapsed(ms(-5)) == "0.0 s");
}

TEST_CASE("ProgressBar.TerminalRedrawsInPlaceAtMostEvery100ms") {
  auto bar = terminal_bar();
  std::string first = bar.update({0, 0, 10}, ms(0));
  CHECK(first == "\r[                        ]   0% | 0/10 done | 0 erred | 0.0 s");
  // Within 100 ms of the last look: nothing, whatever changed; the caller is told how long to sleep.
  CHECK(bar.update({5, 0, 10}, ms(50)).empty());
  CHECK(bar.wait_before_next(ms(50)) == ms(50));
  std::string second = bar.update({5, 1, 10}, ms(100));
  CHECK(second.rfind("\r[############            ]  50% | 5/10 done | 1 erred | 0.1 s", 0) == 0);
  CHECK_FALSE(has(second, '\n'));
  std::string last = bar.finish({10, 1, 10}, ms(230));
  CHECK(last == "\r[########################] 100% | 10/10 done | 1 erred | 0.2 s\n");
  CHECK(bar.finish({10, 1, 10}, ms(300)).empty());
  CHECK(bar.update({10, 1, 10}, ms(400)).empty());
}

TEST_CASE("ProgressBar.TerminalSkipsIdenticalRedraws") {
  // Above a minute the time shows whole seconds: a look 100 ms later finds the same text.
  auto bar = terminal_bar();
  CHECK_FALSE(bar.update({1, 0, 10}, ms(61000)).empty());
  CHECK(bar.update({1, 0, 10}, ms(61100)).empty());
  // A count that changed is drawn at the next look.
  CHECK(bar.update({2, 0, 10}, ms(61200)).rfind("\r[####                    ]  20% | 2/10 done", 0) == 0);
}

TEST_CASE("ProgressBar.TerminalNeverSpinsWhenTextIsUnchanged") {
  // The 1-minute display changes once a second: looks every 100 ms in between write nothing but
  // each pushes the next look 100 ms on.
  auto bar = terminal_bar();
  CHECK_FALSE(bar.update({1, 0, 10}, ms(61000)).empty());
  CHECK(bar.update({1, 0, 10}, ms(61100)).empty());
  CHECK(bar.wait_before_next(ms(61100)) == ms(100));
  CHECK(bar.update({1, 0, 10}, ms(61150)).empty());
  CHECK(bar.wait_before_next(ms(61150)) == ms(50));
}

TEST_CASE("ProgressBar.TerminalBlanksTheRestOfALongerPreviousLine") {
  auto bar = terminal_bar(0);
  std::string a = bar.update({0, 0, 10}, ms(59900));  // "  0% | 0/10 done | 0 erred | 59.9 s"
  std::string b = bar.update({0, 0, 10}, ms(60000));  // "  0% | 0/10 done | 0 erred | 1m00s": one shorter
  REQUIRE(b.size() == a.size());
  CHECK(b.back() == ' ');
  CHECK(b.rfind("\r  0% | 0/10 done | 0 erred | 1m00s", 0) == 0);
}

TEST_CASE("ProgressBar.TerminalBarShrinksToTheColumnsAndDisappearsWhenNarrow") {
  auto wide = terminal_bar(40, 200);
  CHECK(wide.update({1, 0, 2}, ms(0)).find(std::string(20, '#') + std::string(20, ' ') + "]") != std::string::npos);
  // 45 columns: the text without the bar is 33 characters, the brackets 3, so 8 cells fit in 44.
  auto narrow = terminal_bar(40, 45);
  std::string line = narrow.update({1, 0, 2}, ms(0));
  CHECK(line == "\r[####    ]  50% | 1/2 done | 0 erred | 0.0 s");
  CHECK(line.size() - 1 <= 44);
  auto tiny = terminal_bar(40, 30);
  CHECK(tiny.update({1, 0, 2}, ms(0)) == "\r 50% | 1/2 done | 0 erred | 0.0 s");
}

TEST_CASE("ProgressBar.LogWritesPlainLinesEveryIntervalAndAFinalOne") {
  auto bar = log_bar(ms(10000));
  // Nothing at the start nor before the first interval.
  CHECK(bar.update({0, 0, 100}, ms(0)).empty());
  CHECK(bar.wait_before_next(ms(0)) == ms(10000));
  CHECK(bar.update({10, 0, 100}, ms(9999)).empty());
  std::string first = bar.update({10, 0, 100}, ms(10000));
  CHECK(first == "[##                      ]  10% | 10/100 done | 0 erred | 10.0 s\n");
  // Not again until another interval passed, and a line even if nothing changed (a sign of life).
  CHECK(bar.update({50, 0, 100}, ms(15000)).empty());
  CHECK(bar.wait_before_next(ms(15000)) == ms(5000));
  CHECK_FALSE(bar.update({10, 0, 100}, ms(20000)).empty());
  std::string last = bar.finish({100, 3, 100}, ms(20500));
  CHECK(last == "[########################] 100% | 100/100 done | 3 erred | 20.5 s\n");
  for (const auto& s : {first, last}) {
    CHECK_FALSE(has(s, '\r'));
    CHECK_FALSE(has(s, '\x1b'));
  }
}

TEST_CASE("ProgressBar.LogIntervalIsAtLeastTheRedrawPeriod") {
  auto bar = log_bar(ms(0));
  CHECK(bar.update({0, 0, 10}, ms(50)).empty());
  CHECK_FALSE(bar.update({0, 0, 10}, ms(100)).empty());
  CHECK(bar.wait_before_next(ms(100)) == ms(100));
}

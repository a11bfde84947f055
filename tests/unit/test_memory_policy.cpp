// The worker's memory rules (target, spill, pause, terminate) and the thresholds' validation, as a pure function.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include "worker/memory_policy.hpp"

using namespace dtask::worker;

namespace {

constexpr std::uint64_t kLimit = 1000;  // thresholds 0.6/0.7/0.8/0.95 -> 600/700/800/950 bytes

MemoryVerdict judge(std::uint64_t held, std::uint64_t process, MemoryThresholds t = {}) {
  return judge_memory(t, kLimit, MemorySample{held, process}, false);
}

// validate()'s message, or "" if it accepts the thresholds.
std::string message(MemoryThresholds t) {
  try {
    validate(t);
  } catch (const std::invalid_argument& e) {
    return std::string(e.what());
  }
  return std::string();
}

}  // namespace

TEST_CASE("memory_policy.no_limit_does_nothing") {
  const MemoryVerdict v = judge_memory(MemoryThresholds{}, 0, MemorySample{1ull << 40, 1ull << 40}, false);
  CHECK(v == MemoryVerdict{});
}

TEST_CASE("memory_policy.under_every_threshold_nothing") {
  CHECK(judge(100, 500) == MemoryVerdict{});
  CHECK(judge(0, 0) == MemoryVerdict{});
}

TEST_CASE("memory_policy.held_above_target_spills_the_excess") {
  CHECK(judge(600, 0).spill_bytes == 0);  // at target: not above
  CHECK(judge(601, 0).spill_bytes == 1);
  CHECK(judge(900, 650).spill_bytes == 300);
  CHECK_FALSE(judge(900, 650).terminate);
}

TEST_CASE("memory_policy.target_off_spills_nothing_on_held_alone") {
  MemoryThresholds t;
  t.target = 0;
  CHECK(judge(900, 650, t).spill_bytes == 0);
  CHECK(judge(900, 0, t).spill_bytes == 0);
}

TEST_CASE("memory_policy.process_above_spill_spills_down_to_target") {
  CHECK(judge(500, 700).spill_bytes == 0);    // at spill: not above
  CHECK(judge(500, 701).spill_bytes == 101);  // back to 600
  // never more than is held: the rest is not ours to spill
  CHECK(judge(50, 790).spill_bytes == 50);
  // the larger of the two rules
  CHECK(judge(590, 750).spill_bytes == 150);
  CHECK(judge(680, 705).spill_bytes == 105);
  CHECK(judge(690, 650).spill_bytes == 90);
}

TEST_CASE("memory_policy.spill_with_target_off_goes_down_to_spill") {
  MemoryThresholds t;
  t.target = 0;
  CHECK(judge(500, 750, t).spill_bytes == 50);
}

TEST_CASE("memory_policy.spill_off") {
  MemoryThresholds t;
  t.spill = 0;
  CHECK(judge(500, 790, t).spill_bytes == 0);
  CHECK(judge(650, 790, t).spill_bytes == 50);  // target still counts
}

TEST_CASE("memory_policy.spill_rule_needs_a_measured_process") {
  CHECK(judge(500, 0).spill_bytes == 0);
}

TEST_CASE("memory_policy.pause_above_pause_on_process_memory") {
  CHECK_FALSE(judge(100, 800).pause);  // at pause: not above
  CHECK(judge(100, 801).pause);
  CHECK(judge(100, 801).spill_bytes == 100);
  // resumes as soon as it is back under, whether paused before or not
  CHECK_FALSE(judge_memory(MemoryThresholds{}, kLimit, MemorySample{100, 799}, true).pause);
  CHECK(judge_memory(MemoryThresholds{}, kLimit, MemorySample{100, 801}, true).pause);
  // measured process memory rules, not held bytes
  CHECK_FALSE(judge(900, 500).pause);
}

TEST_CASE("memory_policy.pause_falls_back_to_held_when_process_not_measured") {
  CHECK_FALSE(judge(800, 0).pause);
  CHECK(judge(801, 0).pause);
  CHECK_FALSE(judge(801, 0).terminate);  // but never terminate on held bytes
}

TEST_CASE("memory_policy.pause_off") {
  MemoryThresholds t;
  t.pause = 0;
  CHECK_FALSE(judge(100, 900, t).pause);
  CHECK_FALSE(judge(900, 0, t).pause);
}

TEST_CASE("memory_policy.terminate_above_terminate") {
  CHECK_FALSE(judge(0, 950).terminate);  // at terminate: not above
  CHECK(judge(0, 951).terminate);
  CHECK(judge(0, 951).pause);
  MemoryThresholds t;
  t.terminate = 0;
  CHECK_FALSE(judge(0, 10000, t).terminate);
}

TEST_CASE("memory_policy.all_off_does_nothing") {
  const MemoryThresholds off{0, 0, 0, 0};
  CHECK(judge(10000, 10000, off) == MemoryVerdict{});
}

TEST_CASE("memory_policy.large_limits") {
  const std::uint64_t limit = 64ull << 30;  // 64 GiB
  const MemoryVerdict v = judge_memory(MemoryThresholds{}, limit, MemorySample{limit, limit / 2}, false);
  CHECK(v.spill_bytes == limit - static_cast<std::uint64_t>(0.6 * static_cast<double>(limit)));
  CHECK_FALSE(v.pause);
}

TEST_CASE("memory_policy.validate_accepts_defaults_and_off") {
  CHECK_NOTHROW(validate(MemoryThresholds{}));
  CHECK_NOTHROW(validate(MemoryThresholds{0, 0, 0, 0}));
  CHECK_NOTHROW(validate(MemoryThresholds{0.5, 0, 0.5, 1.0}));
  CHECK_NOTHROW(validate(MemoryThresholds{0, 0.7, 0, 0.9}));
}

TEST_CASE("memory_policy.validate_rejects_out_of_range") {
  CHECK(message({1.5, 0.7, 0.8, 0.95}).find("target") != std::string::npos);
  CHECK(message({0.6, -0.1, 0.8, 0.95}).find("spill") != std::string::npos);
  CHECK(message({0.6, 0.7, NAN, 0.95}).find("pause") != std::string::npos);
  CHECK(message({0.6, 0.7, 0.8, 1.01}).find("terminate") != std::string::npos);
}

TEST_CASE("memory_policy.validate_rejects_wrong_order") {
  const std::string m = message({0.9, 0, 0.5, 0});  // pause below target, spill off in between
  CHECK(m.find("pause (0.5) is below target (0.9)") != std::string::npos);
  CHECK(message({0.6, 0.5, 0.8, 0.95}).find("spill") != std::string::npos);
  CHECK(message({0.6, 0.7, 0.8, 0.75}).find("terminate") != std::string::npos);
}

TEST_CASE("memory_policy.process_crossings_are_what_judge_memory_and_the_monitor_read") {
  // 700/800/950 of a 1000-byte limit: strictly above each.
  CHECK(process_crossings({}, kLimit, 700) == ProcessCrossings{false, false, false});
  CHECK(process_crossings({}, kLimit, 701) == ProcessCrossings{true, false, false});
  CHECK(process_crossings({}, kLimit, 801) == ProcessCrossings{true, true, false});
  CHECK(process_crossings({}, kLimit, 951) == ProcessCrossings{true, true, true});
  // A threshold that is off is never crossed; nor anything without a limit or a measurement.
  CHECK(process_crossings({0.6, 0, 0.8, 0}, kLimit, 999) == ProcessCrossings{false, true, false});
  CHECK(process_crossings({}, 0, 999) == ProcessCrossings{});
  CHECK(process_crossings({}, kLimit, 0) == ProcessCrossings{});
}

TEST_CASE("memory_policy.threshold_arguments_read_back_as_given") {
  CHECK(threshold_arguments({}, true).empty());
  CHECK(threshold_arguments({}, false) == std::vector<std::string>{"--memory-target=0.6", "--memory-spill=0.7",
                                                                   "--memory-pause=0.8", "--memory-terminate=0.95"});
  CHECK(threshold_arguments({0.5, 0.7, 0, 0.95}, true) == std::vector<std::string>{"--memory-target=0.5", "--memory-pause=0"});
}

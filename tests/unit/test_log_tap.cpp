// The log tap (info and above kept whatever the console prints, bounded), levels (set_level, SPDLOG_LEVEL) and the loggers' tags.
#include <doctest/doctest.h>

#include <spdlog/sinks/sink.h>

#include "common/host.hpp"
#include "common/log.hpp"

using namespace dtask;

TEST_CASE("LogTap.KeepsInfoWhenTheConsoleIsQuieter") {
  log::set_level("warn");
  auto logger = log::make("worker", "tap-test");
  auto tap = log::LogTap::attach(logger);
  CHECK(logger->level() == spdlog::level::info);
  CHECK(logger->sinks()[0]->level() == spdlog::level::warn);  // the console prints what it did
  logger->debug("debug is not kept");
  logger->info("hello {}", 1);
  logger->warn("careful");
  auto lines = tap->take();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].level == "info");
  CHECK(lines[0].text == "hello 1");
  CHECK(lines[1].level == "warning");
  CHECK(lines[1].text == "careful");
  CHECK(lines[0].time_us <= lines[1].time_us);
  CHECK(tap->take().empty());  // taken
}

TEST_CASE("LogTap.IsBounded") {
  log::set_level("warn");
  auto logger = log::make("worker", "tap-bound");
  auto tap = log::LogTap::attach(logger);
  for (std::size_t i = 0; i < log::LogTap::kMaxPending + 10; ++i) logger->info("line {}", i);
  auto lines = tap->take();
  REQUIRE(lines.size() == log::LogTap::kMaxPending);
  CHECK(lines.front().text == "line 10");  // the oldest went
  CHECK(lines.back().text == "line " + std::to_string(log::LogTap::kMaxPending + 9));
  CHECK(tap->take().empty());
}

TEST_CASE("LogTap.SetLevelReachesExistingLoggers") {
  log::set_level("warn");
  auto tapped = log::make("worker", "tap-levels");
  auto tap = log::LogTap::attach(tapped);
  auto plain = log::make("scheduler", "");
  log::set_level("debug");
  CHECK(tapped->sinks()[0]->level() == spdlog::level::debug);
  CHECK(tapped->level() == spdlog::level::debug);
  CHECK(plain->level() == spdlog::level::debug);
  log::set_level("error");
  CHECK(tapped->sinks()[0]->level() == spdlog::level::err);
  CHECK(tapped->level() == spdlog::level::info);  // never above info with a tap, never below either
  CHECK(plain->level() == spdlog::level::err);
  auto later = log::make("client", "c");
  CHECK(later->level() == spdlog::level::err);
  tapped->info("still kept");
  CHECK(tap->take().size() == 1);
  log::set_level("warn");
}

TEST_CASE("LogTap.SpdlogLevelConvention") {
  CHECK(log::level_from_spdlog_env("info") == "info");
  CHECK(log::level_from_spdlog_env("DEBUG") == "debug");
  CHECK(log::level_from_spdlog_env("debug,worker=info") == "debug");
  CHECK(log::level_from_spdlog_env("worker=info,trace") == "trace");
  CHECK(log::level_from_spdlog_env(" warn , x=y") == "warn");
  CHECK(log::level_from_spdlog_env("warning") == "warn");
  CHECK(log::level_from_spdlog_env("err") == "error");
  CHECK(log::level_from_spdlog_env("off") == "off");
  CHECK(log::level_from_spdlog_env("info,bogus") == "info");  // unknown parts ignored
  CHECK_FALSE(log::level_from_spdlog_env("worker=info").has_value());
  CHECK_FALSE(log::level_from_spdlog_env("bogus").has_value());
  CHECK_FALSE(log::level_from_spdlog_env("").has_value());
}

TEST_CASE("LogTap.TagHasRoleAndHost") {
  CHECK(log::logger_name("worker", "w0", "node1") == "worker w0@node1");
  CHECK(log::logger_name("runner", "rank2@node1", "node1") == "runner rank2@node1");  // not doubled
  CHECK(log::logger_name("client", "client@rank1@node1", "node1") == "client client@rank1@node1");
  CHECK(log::logger_name("scheduler", "", "node1") == "scheduler@node1");
  CHECK(log::logger_name("supervisor", "w0", "node1") == "supervisor w0@node1");
  CHECK(log::make("worker", "w0")->name() == "worker w0@" + hostname());
}

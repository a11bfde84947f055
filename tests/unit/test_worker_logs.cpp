// Reading the scheduler's InfoReply "logs" (docs/dashboard.md, "Worker logs") into get_worker_logs's structs: last n lines, clear errors.
#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "client/worker_logs.hpp"

using dtask::detail::parse_worker_logs;
using nlohmann::json;

namespace {

json line(std::uint64_t us, const std::string& text, const std::string& level = "info") {
  return json{{"time_us", us}, {"level", level}, {"text", text}};
}

json reply() {
  return json{{"workers",
               {{"rank2", {{"alive", true}, {"host", "node1"}, {"lines", json::array({line(1'000'000, "a"), line(2'000'000, "b", "warning"), line(3'000'000, "c")})}}},
                {"rank3", {{"alive", false}, {"host", "node2"}, {"lines", json::array()}}}}}};
}

std::string error_of(const json& j) {
  try {
    parse_worker_logs(j, 1000);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("WorkerLogs.ParsesEveryWorkerAliveOrNot") {
  auto logs = parse_worker_logs(reply(), 1000);
  REQUIRE(logs.size() == 2);
  const auto& r2 = logs.at("rank2");
  CHECK(r2.alive);
  CHECK(r2.host == "node1");
  REQUIRE(r2.lines.size() == 3);
  CHECK(r2.lines[1].level == "warning");
  CHECK(r2.lines[1].message == "b");
  CHECK(r2.lines[1].time.time_since_epoch() == std::chrono::seconds(2));
  const auto& r3 = logs.at("rank3");
  CHECK_FALSE(r3.alive);
  CHECK(r3.host == "node2");
  CHECK(r3.lines.empty());
  CHECK(parse_worker_logs(json{{"workers", json::object()}}, 1000).empty());
}

TEST_CASE("WorkerLogs.KeepsTheLastNLinesOldestFirst") {
  json j = reply();
  // Out of order on the wire: sorted by time, equal times in their order.
  j["workers"]["rank2"]["lines"] = json::array({line(3, "c"), line(1, "a"), line(2, "b1"), line(2, "b2")});
  auto two = parse_worker_logs(j, 2).at("rank2").lines;
  REQUIRE(two.size() == 2);
  CHECK(two[0].message == "b2");
  CHECK(two[1].message == "c");
  auto all = parse_worker_logs(j, 1000).at("rank2").lines;
  REQUIRE(all.size() == 4);
  CHECK(all[0].message == "a");
  CHECK(all[1].message == "b1");
  CHECK(all[2].message == "b2");
  CHECK(parse_worker_logs(j, 0).at("rank2").lines.empty());
}

TEST_CASE("WorkerLogs.IgnoresFieldsItDoesNotKnow") {
  json j = reply();
  j["extra"] = 1;
  j["workers"]["rank2"]["pid"] = 7;
  j["workers"]["rank2"]["lines"][0]["logger"] = "worker";
  CHECK(parse_worker_logs(j, 1000).at("rank2").lines.size() == 3);
}

TEST_CASE("WorkerLogs.MalformedShapesGiveAClearError") {
  CHECK(error_of(json::array()).find("the reply is not an object") != std::string::npos);
  CHECK(error_of(json{{"version", 1}}).find("has no \"workers\"") != std::string::npos);
  CHECK(error_of(json{{"error", "unknown request 'logs'"}}) ==
        "dtask: the scheduler refused the worker logs: unknown request 'logs'");
  CHECK(error_of(json{{"workers", json::array()}}).find("\"workers\" is not an object") != std::string::npos);
  auto broken = [](auto mutate) {
    json j = reply();
    mutate(j);
    return error_of(j);
  };
  CHECK(broken([](json& j) { j["workers"]["rank2"] = 5; }).find("workers[\"rank2\"] is not an object") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"].erase("alive"); }).find("has no \"alive\"") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["alive"] = "yes"; }).find(".alive is not a boolean") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["host"] = nullptr; }).find(".host is not a string") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"] = json::object(); }).find(".lines is not an array") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][1] = "text"; }).find("lines[1] is not an object") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][2].erase("text"); }).find("lines[2] has no \"text\"") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][0]["time_us"] = -1; }).find("time_us is not a non-negative integer") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][0]["time_us"] = 1.5; }).find("time_us is not a non-negative integer") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][0]["time_us"] = "1"; }).find("time_us is not a non-negative integer") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][0]["level"] = 3; }).find(".level is not a string") != std::string::npos);
  CHECK(broken([](json& j) { j["workers"]["rank2"]["lines"][0]["time_us"] = std::uint64_t(-1); }).find("time_us is not a representable time") != std::string::npos);
}

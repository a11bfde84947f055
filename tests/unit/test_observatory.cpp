// The scheduler's observability (observatory.cpp, scheduler_state.cpp): progress per task name,
// runs, errors, logs of workers past and present, reports and their windows.
#include <doctest/doctest.h>

#include "dashboard/report_window.hpp"
#include "test_scheduler_harness.hpp"

using namespace dtask;
using namespace dtask::protocol;
using namespace dtask::scheduler;
using dtask::test::Harness;
using nlohmann::json;

namespace {

const json* row(const json& rows, const std::string& name) {
  for (const auto& r : rows) {
    if (r.value("name", std::string()) == name) return &r;
  }
  return nullptr;
}

Telemetry runs_of(std::vector<TaskRun> runs, std::vector<FuncTotals> totals = {}, std::vector<LogLine> log = {}) {
  Telemetry t;
  t.runs = std::move(runs);
  t.totals = std::move(totals);
  t.log = std::move(log);
  return t;
}

}  // namespace

TEST_CASE("Observatory.ProgressCountsPerTaskNameStayAfterRelease") {
  Harness h;
  auto w = h.worker("a", 4);
  auto specs = Harness::roots("i", 3, "inc");
  specs.push_back(Harness::spec("d0", "double"));
  h.submit(specs);
  auto cs = h.computes();
  REQUIRE(cs.size() == 4);
  json snap = h.s.snapshot(h.now, json::object());
  const json* inc = row(snap["progress"], "inc");
  REQUIRE(inc);
  CHECK((*inc)["running"] == 3);
  CHECK((*inc)["done"] == 0);
  for (auto& [wid, c] : cs) {
    if (c.key != "d0") h.done(w, c);
  }
  TaskId d0{};
  for (auto& [wid, c] : cs) {
    if (c.key == "d0") d0 = c.task;
  }
  h.s.handle(w, TaskFailed{d0, "boom"}, h.now, h.out);
  snap = h.s.snapshot(h.now, json::object());
  CHECK((*row(snap["progress"], "inc"))["done"] == 3);
  CHECK((*row(snap["progress"], "inc"))["in_memory"] == 3);
  CHECK((*row(snap["progress"], "double"))["erred"] == 1);
  CHECK(snap["totals"]["done"] == 3);
  // Released by the client: the results go, the counts stay.
  h.s.handle(h.client, ReleaseKeys{{"i0", "i1", "i2", "d0"}}, h.now, h.out);
  snap = h.s.snapshot(h.now, json::object());
  CHECK((*row(snap["progress"], "inc"))["done"] == 3);
  CHECK((*row(snap["progress"], "inc"))["in_memory"] == 0);
  REQUIRE(snap["errors"].size() == 1);
  CHECK(snap["errors"][0]["message"] == "boom");
  CHECK(snap["errors"][0]["worker"] == "a");
  CHECK(snap["errors"][0]["key"] == "d0");
}

TEST_CASE("Observatory.AnInputsFailureIsOneErrorButEveryDependentErred") {
  Harness h;
  auto w = h.worker("a");
  h.submit({Harness::spec("x", "load"), Harness::spec("y", "use", {"x"}), Harness::spec("z", "use", {"x"})});
  auto [wid, c] = h.compute_of("x");
  h.s.handle(w, TaskFailed{c.task, "no file"}, h.now, h.out);
  json snap = h.s.snapshot(h.now, json::object());
  CHECK((*row(snap["progress"], "use"))["erred"] == 2);
  CHECK(snap["errors"].size() == 1);
}

TEST_CASE("Observatory.CancelledTasksAreNotErrors") {
  Harness h;
  h.worker("a");
  h.submit({Harness::spec("x", "slow")});
  h.s.handle(h.client, CancelKeys{{"x"}}, h.now, h.out);
  json snap = h.s.snapshot(h.now, json::object());
  CHECK((*row(snap["progress"], "slow"))["erred"] == 0);
  CHECK(snap["errors"].empty());
}

TEST_CASE("Observatory.RunsNameTheirKeyWorkerAndThreadAndAreWindowed") {
  Harness h;
  auto w = h.worker("a", 2);
  h.submit({Harness::spec("k1", "inc")});
  auto [wid, c] = h.compute_of("k1");
  const std::uint64_t now_us = h.now * 1000;
  h.s.handle(w, runs_of({TaskRun{c.task, "inc", now_us - 2000, now_us - 1000, 1, false}}, {FuncTotals{"inc", 1, 0, 1000, 1000}}),
             h.now, h.out);
  json snap = h.s.snapshot(h.now, json::object());
  REQUIRE(snap["task_stream"].size() == 1);
  CHECK(snap["task_stream"][0]["key"] == "k1");
  CHECK(snap["task_stream"][0]["worker"] == "a");
  CHECK(snap["task_stream"][0]["thread"] == 1);
  CHECK(snap["totals"]["task_seconds"].get<double>() == doctest::Approx(0.001));
  // Ten seconds later the run is out of the live stream but still in the report.
  h.now += Observatory::kSnapshotStreamMs + 1000;
  snap = h.s.snapshot(h.now, json::object());
  CHECK(snap["task_stream"].empty());
  json rep = h.s.report(h.now, 0, json::object());
  CHECK(rep["task_stream"].size() == 1);
  CHECK((*row(rep["by_name"], "inc"))["task_seconds"].get<double>() == doctest::Approx(0.001));
}

TEST_CASE("Observatory.LogsOfAWorkerThatDiedAreKeptWithTheReason") {
  Harness h;
  auto w = h.worker("a");
  h.worker("b");
  h.s.handle(w, runs_of({}, {}, {LogLine{1, "info", "worker a started"}}), h.now, h.out);
  h.s.remove_worker(w, WorkerLoss::died("killed by signal 9 (SIGKILL)", {}), h.out);
  json logs = h.s.observatory().logs(1000)["workers"];
  REQUIRE(logs.contains("a"));
  CHECK(logs["a"]["alive"] == false);
  REQUIRE(logs["a"]["lines"].size() == 2);
  CHECK(logs["a"]["lines"][0]["text"] == "worker a started");
  CHECK(logs["a"]["lines"][1]["text"].get<std::string>().find("SIGKILL") != std::string::npos);
  CHECK(logs["b"]["alive"] == true);
  // Bounded per worker.
  Telemetry many;
  for (std::size_t i = 0; i < Observatory::kMaxLogLines + 10; ++i) many.log.push_back(LogLine{i, "info", std::to_string(i)});
  auto b = h.worker("c");
  h.s.handle(b, many, h.now, h.out);
  logs = h.s.observatory().logs(1000)["workers"];
  CHECK(logs["c"]["lines"].size() == Observatory::kMaxLogLines);
  CHECK(logs["c"]["lines"].back()["text"] == std::to_string(Observatory::kMaxLogLines + 9));
}

TEST_CASE("Observatory.InfoRequestAnswersLogsReportAndRefusesUnknown") {
  Harness h;
  h.worker("a");
  h.s.handle(h.client, InfoRequest{1, "logs", 0}, h.now, h.out);
  h.s.handle(h.client, InfoRequest{2, "report", 0}, h.now, h.out);
  h.s.handle(h.client, InfoRequest{3, "nonsense", 0}, h.now, h.out);
  auto replies = h.to_client<InfoReply>();
  REQUIRE(replies.size() == 3);
  CHECK(replies[0].info.contains("workers"));
  CHECK(replies[0].info["workers"].contains("a"));
  CHECK(replies[1].info.contains("by_name"));
  CHECK(replies[2].info["error"].get<std::string>().find("unknown request") != std::string::npos);
}

TEST_CASE("Observatory.ThroughputIsFinishedTasksPerSecond") {
  Harness h;
  auto w = h.worker("a", 8);
  h.s.observatory().sample_throughput(h.now, h.s.finished_total());
  h.submit(Harness::roots("r", 6, "inc"));
  for (auto& [wid, c] : h.computes()) h.done(w, c);
  h.now += 2000;
  h.s.observatory().sample_throughput(h.now, h.s.finished_total());
  json snap = h.s.snapshot(h.now, json::object());
  REQUIRE(snap["throughput"].size() == 1);
  CHECK(snap["throughput"][0][1].get<double>() == doctest::Approx(3.0));
}

TEST_CASE("Observatory.ReportWindowSubtractsCountersAndKeepsLaterEvents") {
  json begin = {{"time_ms", 1000},
                {"by_name", {{{"name", "inc"}, {"done", 5}, {"erred", 1}, {"task_seconds", 1.5}}}},
                {"workers", {{{"name", "a"}, {"tasks_done", 5}, {"busy_s", 1.5}}}},
                {"transfers", json::array()},
                {"task_stream", {{{"name", "inc"}, {"stop_ms", 900.0}}}},
                {"errors", {{{"time_ms", 800}, {"message", "old"}}}},
                {"throughput", {{900, 2.0}}},
                {"totals", {{"done", 5}}}};
  json end = begin;
  end["time_ms"] = 3000;
  end["by_name"] = {{{"name", "inc"}, {"done", 12}, {"erred", 1}, {"task_seconds", 4.0}},
                    {{"name", "sum"}, {"done", 1}, {"erred", 0}, {"task_seconds", 0.5}}};
  end["workers"] = {{{"name", "a"}, {"tasks_done", 13}, {"busy_s", 4.5}}};
  end["task_stream"].push_back({{"name", "inc"}, {"stop_ms", 1500.0}});
  end["errors"].push_back({{"time_ms", 2000}, {"message", "new"}});
  end["throughput"].push_back({2000, 3.0});
  end["totals"] = {{"done", 13}};
  json w = dashboard::report_window(begin, end);
  CHECK((*row(w["by_name"], "inc"))["done"] == 7);
  CHECK((*row(w["by_name"], "inc"))["erred"] == 0);
  CHECK((*row(w["by_name"], "inc"))["task_seconds"].get<double>() == doctest::Approx(2.5));
  CHECK((*row(w["by_name"], "sum"))["done"] == 1);
  CHECK((*row(w["workers"], "a"))["tasks_done"] == 8);
  CHECK(w["task_stream"].size() == 1);
  REQUIRE(w["errors"].size() == 1);
  CHECK(w["errors"][0]["message"] == "new");
  CHECK(w["throughput"].size() == 1);
  CHECK(w["totals"]["done"] == 8);
  CHECK(w["started_ms"] == 1000);
  CHECK(dashboard::report_window(json::object(), end) == end);
  CHECK_THROWS_AS(dashboard::report_window(json::object(), json::array()), std::invalid_argument);
  CHECK_THROWS_AS(dashboard::report_window(json{{"by_name", 3}}, end), std::invalid_argument);
}

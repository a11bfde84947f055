// The HTML job report (dashboard/report_html): self-contained, data embedded safely (a hostile error message cannot end the script), counts present, atomic write.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "dashboard/report_html.hpp"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kHostile = "</script><script>alert(1)</script><!-- & \u2028";

json report() {
  json r = json::parse(R"({
    "version": 1, "started_ms": 1764539990000, "finished_ms": 1764540000000, "since_ms": 0,
    "scheduler": {"address": "tcp://10.0.0.1:40123", "host": "node1", "job_id": "42",
                  "cpu_seconds": 1.25, "cpu_percent": 12.5, "rss_bytes": 41943040},
    "by_name": [{"name": "inc", "done": 120, "erred": 1, "task_seconds": 10.5, "max_s": 0.2},
                {"name": "fail", "done": 0, "erred": 3, "task_seconds": 0.1, "max_s": 0.05}],
    "workers": [{"name": "rank2", "host": "node1", "nthreads": 2, "first_seen_ms": 1764539990000,
                 "last_seen_ms": 1764540000000, "alive": true, "tasks_done": 120, "busy_s": 10.5}],
    "transfers": [], "task_stream": [], "task_stream_dropped": 0, "throughput": [], "errors": []
  })");
  r["errors"].push_back({{"time_ms", 1764539995000}, {"name", "fail"}, {"key", "fail-1"}, {"worker", "rank2"},
                         {"message", kHostile}});
  return r;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string embedded_data(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-data\">";
  size_t b = html.find(open);
  REQUIRE(b != std::string::npos);
  b += open.size();
  size_t e = html.find("</script>", b);
  REQUIRE(e != std::string::npos);
  return html.substr(b, e - b);
}

}  // namespace

TEST_CASE("Report.HostileMessageCannotEndTheScript") {
  std::string html = dtask::dashboard::render_report_html(report());
  CHECK(html.find("alert(1)") != std::string::npos);  // the message is there...
  CHECK(html.find("<script>alert(1)") == std::string::npos);  // ...but never as markup
  CHECK(html.find("<!-- &") == std::string::npos);
  // Every "</script>" in the page closes one of the page's own <script> elements.
  CHECK(count(html, "</script>") == count(html, "<script"));
  std::string data = embedded_data(html);
  CHECK(data.find('<') == std::string::npos);
  CHECK(data.find('>') == std::string::npos);
  CHECK(data.find('&') == std::string::npos);
  // And the embedded text is JSON that gives back the very message.
  json back = json::parse(data);
  CHECK(back["errors"][0]["message"] == kHostile);
  CHECK(back == report());
}

TEST_CASE("Report.CountsAndNamesPresent") {
  std::string data = embedded_data(dtask::dashboard::render_report_html(report()));
  json back = json::parse(data);
  REQUIRE(back["by_name"].size() == 2);
  CHECK(back["by_name"][0]["name"] == "inc");
  CHECK(back["by_name"][0]["done"] == 120);
  CHECK(back["by_name"][1]["erred"] == 3);
}

TEST_CASE("Report.SelfContained") {
  std::string html = dtask::dashboard::render_report_html(report());
  // Nothing is loaded from anywhere: no src= or href= to another file, every asset mark filled in.
  CHECK(html.find(" src=") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("@*/") == std::string::npos);
  CHECK(html.find("@DATA@") == std::string::npos);
  CHECK(html.find("@UPLOT_LICENSE@") == std::string::npos);
  CHECK(html.find("Copyright (c) 2022 Leon Sorokin") != std::string::npos);  // the inlined library's licence
  CHECK(html.find("uPlot") != std::string::npos);   // the chart library inline
  CHECK(html.find("var DT =") != std::string::npos);  // the shared chart code inline
  CHECK(html.find("id=\"page-errors\"") != std::string::npos);
}

TEST_CASE("Report.WriteIsAtomicAndNamesThePathOnError") {
  fs::path dir = fs::temp_directory_path() / ("dtask-report-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::path file = dir / "report.html";
  dtask::dashboard::write_report_html(file.string(), report());
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == dtask::dashboard::render_report_html(report()));
  CHECK_FALSE(fs::exists(dir / "report.html.tmp"));
  std::string bad = (dir / "no-such-dir" / "r.html").string();
  try {
    dtask::dashboard::write_report_html(bad, report());
    FAIL("no error for a missing directory");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(bad) != std::string::npos);
  }
  fs::remove_all(dir);
}

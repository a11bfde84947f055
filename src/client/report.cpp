// The job's report from a client (include/dtask/report.hpp): asks the scheduler, renders one page.
#include <dtask/report.hpp>

#include <cstdint>
#include <cstdio>
#include <thread>

#include <dtask/client.hpp>

#include "client/connection.hpp"
#include "client/internal.hpp"
#include "dashboard/report_html.hpp"
#include "dashboard/report_window.hpp"

namespace dtask {

namespace {
// The scheduler's cumulative report (InfoRequest "report") with the runs and errors that ended
// since `since_ms` (wall clock; the maximum: none, only the counters). It can be large (every
// kept run): a minute is generous even for 100,000 runs.
nlohmann::json fetch_report(Client& client, std::uint64_t since_ms) {
  auto j = detail::ClientInternals::core(client).info("report", since_ms, std::chrono::seconds(60));
  if (j.contains("error")) throw std::runtime_error("the scheduler refused the report: " + j["error"].get<std::string>());
  return j;
}
// Workers report their runs with their heartbeats (Telemetry), so the scheduler may count a task
// finished before the run that made it arrives. Waits (briefly) until every name has at least as
// many runs as finished tasks, so a report taken right after a gather shows its last runs.
nlohmann::json settled_report(Client& client, std::uint64_t since_ms) {
  auto behind = [](const nlohmann::json& r) {
    for (const auto& row : r.value("by_name", nlohmann::json::array())) {
      if (row.value("runs", std::uint64_t{0}) < row.value("done", std::uint64_t{0})) return true;
    }
    return false;
  };
  auto r = fetch_report(client, since_ms);
  for (int i = 0; i < 15 && behind(r); ++i) {  // 3 s: a few heartbeats of every worker
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    r = fetch_report(client, since_ms);
  }
  return r;
}

}  // namespace

void write_report(Client& client, const std::string& path) {
  dashboard::write_report_html(path, settled_report(client, 0));
}

PerformanceReport::PerformanceReport(Client& client, std::string path)
    : client_(&client), path_(std::move(path)), begin_(fetch_report(client, UINT64_MAX)) {}

PerformanceReport::~PerformanceReport() {
  if (closed_) return;
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dtask: the performance report was not written: %s\n", e.what());
  }
}

void PerformanceReport::close() {
  if (closed_) return;
  closed_ = true;
  const auto from = begin_.value("time_ms", std::uint64_t{0});
  dashboard::write_report_html(path_, dashboard::report_window(begin_, settled_report(*client_, from)));
}

}  // namespace dtask

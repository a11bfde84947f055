// The job's report as one self-contained HTML page (Dask's performance_report), from a client.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dtask {

class Client;

// Writes the report of everything the scheduler kept since it started: task stream, counts,
// durations and errors per task name, worker utilisation, transfers (docs/dashboard.md). Throws
// std::runtime_error naming the path and the reason when it cannot be written, ConnectionError /
// TimeoutError when the scheduler does not answer.
void write_report(Client& client, const std::string& path);

// What ran between construction and close() (or destruction), like Dask's
//   with performance_report(filename="dask-report.html"): ...
// The scheduler's counters are read at both ends and subtracted; runs and errors are those that
// ended in between.
class PerformanceReport {
 public:
  PerformanceReport(Client& client, std::string path);
  // Writes the report if close() was not called; an error is printed to stderr, never thrown.
  ~PerformanceReport();
  PerformanceReport(const PerformanceReport&) = delete;
  PerformanceReport& operator=(const PerformanceReport&) = delete;
  // Writes the report now; throws like write_report(). Once: later calls do nothing.
  void close();

 private:
  Client* client_;
  std::string path_;
  nlohmann::json begin_;
  bool closed_ = false;
};

}  // namespace dtask

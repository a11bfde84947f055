// The job report: one self-contained HTML page (data, JS, CSS inline) from a report JSON.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dtask::dashboard {

// Pure: docs/dashboard.md's report JSON in, the page out. It loads nothing from anywhere: the
// data is embedded (escaped so that no "</script>" in a task's error message can end it).
std::string render_report_html(const nlohmann::json& report);

// Writes render_report_html(report) to `path` (atomically: a temporary file renamed); throws
// std::runtime_error naming the path and the reason.
void write_report_html(const std::string& path, const nlohmann::json& report);

}  // namespace dtask::dashboard

// The job report: one self-contained HTML page (data, JS and CSS inline) from a report JSON.
#include "dashboard/report_html.hpp"

#include <stdexcept>

#include "common/atomic_file.hpp"
#include "dashboard/assets.hpp"

namespace dtask::dashboard {
namespace {

// JSON safe inside <script>: '<', '>' and '&' only occur inside JSON strings, where \uXXXX means
// the same character, so "</script>" or "<!--" in a task's error message cannot end the element.
std::string script_safe_json(const nlohmann::json& j) {
  std::string raw = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(raw.size() + 64);
  for (char c : raw) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

}  // namespace

std::string render_report_html(const nlohmann::json& report) {
  // report.html's marks, in the order they appear.
  const std::string data = script_safe_json(report), licence = html_escaped(asset_text("vendor/uplot/LICENSE"));
  return fill_marks(asset_text("report.html"), {{"/*@PAGE_ERRORS_JS@*/", asset_text("page_errors.js")},
                                               {"/*@UPLOT_CSS@*/", asset_text("vendor/uplot/uPlot.min.css")},
                                               {"/*@DASHBOARD_CSS@*/", asset_text("dashboard.css")},
                                               {"@DATA@", data},
                                               {"@UPLOT_LICENSE@", licence},
                                               {"/*@UPLOT_JS@*/", asset_text("vendor/uplot/uPlot.iife.min.js")},
                                               {"/*@CHARTS_JS@*/", asset_text("charts.js")},
                                               {"/*@REPORT_JS@*/", asset_text("report.js")}});
}

void write_report_html(const std::string& path, const nlohmann::json& report) {
  if (auto why = write_file_atomically(path, render_report_html(report), 0644); !why.empty()) {
    throw std::runtime_error("cannot write the report " + path + ": " + why);
  }
}

}  // namespace dtask::dashboard

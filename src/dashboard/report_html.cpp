// The job report: one self-contained HTML page (data, JS and CSS inline) from a report JSON.
#include "dashboard/report_html.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

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
  // report.html's marks, in the order they appear; each replaced once, left to right, so that
  // nothing inserted (a script, the data) is searched for marks again.
  const std::pair<const char*, std::string> parts[] = {
      {"/*@UPLOT_CSS@*/", std::string(asset_text("vendor/uplot/uPlot.min.css"))},
      {"/*@DASHBOARD_CSS@*/", std::string(asset_text("dashboard.css"))},
      {"@DATA@", script_safe_json(report)},
      {"@UPLOT_LICENSE@", html_escaped(asset_text("vendor/uplot/LICENSE"))},
      {"/*@UPLOT_JS@*/", std::string(asset_text("vendor/uplot/uPlot.iife.min.js"))},
      {"/*@CHARTS_JS@*/", std::string(asset_text("charts.js"))},
      {"/*@REPORT_JS@*/", std::string(asset_text("report.js"))},
  };
  std::string_view tpl = asset_text("report.html");
  std::string out;
  size_t from = 0;
  for (const auto& [mark, text] : parts) {
    size_t at = tpl.find(mark, from);
    if (at == std::string_view::npos) continue;
    out.append(tpl.substr(from, at - from));
    out += text;
    from = at + std::strlen(mark);
  }
  out.append(tpl.substr(from));
  return out;
}

void write_report_html(const std::string& path, const nlohmann::json& report) {
  std::string html = render_report_html(report);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write the report " + path + ": " + std::strerror(errno));
    out.write(html.data(), static_cast<std::streamsize>(html.size()));
    out.flush();
    if (!out) {
      int err = errno;
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write the report " + path + ": " + std::strerror(err));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write the report " + path + ": " + std::strerror(err));
  }
}

}  // namespace dtask::dashboard

// The dashboard's compiled-in files (src/dashboard/assets/, embedded by embed_assets.py at build time).
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

namespace dtask::dashboard {

struct Asset {
  std::string_view name;          // path under src/dashboard/assets/, e.g. "vendor/uplot/LICENSE"
  std::string_view data;
  std::string_view content_type;
};

// Every asset, sorted by name (generated code).
const std::vector<Asset>& assets();

// The asset called `name`, or nullptr.
inline const Asset* find_asset(std::string_view name) {
  for (const Asset& a : assets())
    if (a.name == name) return &a;
  return nullptr;
}

// The asset's text; throws nothing: an asset missing from the build is a build error, so this
// returns "" only for a name nobody embedded.
inline std::string_view asset_text(std::string_view name) {
  const Asset* a = find_asset(name);
  return a ? a->data : std::string_view{};
}

// `tpl` with each mark replaced by its text, marks taken in the order they appear in `tpl` and
// each filled once, left to right, so nothing inserted (a script, the data) is searched again.
// A mark `tpl` does not have is skipped.
inline std::string fill_marks(std::string_view tpl, std::initializer_list<std::pair<std::string_view, std::string_view>> marks) {
  std::string out;
  std::size_t from = 0;
  for (const auto& [mark, text] : marks) {
    std::size_t at = tpl.find(mark, from);
    if (at == std::string_view::npos) continue;
    out.append(tpl.substr(from, at - from));
    out.append(text);
    from = at + mark.size();
  }
  out.append(tpl.substr(from));
  return out;
}

// `text` with &, <, > and " written as character references, for inlining a licence text.
inline std::string html_escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace dtask::dashboard

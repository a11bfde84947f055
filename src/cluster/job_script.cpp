// The Slurm batch script of a dtask::slurm::Cluster: options -> text, and the checks on those options.
#include "cluster/job_script.hpp"

#include <cctype>
#include <cmath>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "common/units.hpp"
#include "worker/memory_policy.hpp"

namespace dtask::slurm {

bool valid_walltime(const std::string& text) {
  if (text == "UNLIMITED" || text == "INFINITE") return true;
  static const std::regex forms(R"(^(\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+|\d+-\d+:\d+:\d+)$)");
  return std::regex_match(text, forms);
}

std::string slurm_memory(std::uint64_t bytes) {
  constexpr std::uint64_t kKi = 1024, kMi = kKi * 1024, kGi = kMi * 1024;
  auto ceil_div = [](std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; };
  if (bytes >= kGi) return std::to_string(ceil_div(bytes, kGi)) + "G";
  if (bytes >= kMi) return std::to_string(ceil_div(bytes, kMi)) + "M";
  return std::to_string(std::max<std::uint64_t>(1, ceil_div(bytes, kKi))) + "K";
}

void validate(const ClusterOptions& o) {
  auto bad = [](const std::string& msg) { throw std::invalid_argument("slurm::Cluster: " + msg); };
  if (o.cores < 1) bad("cores must be >= 1 (got " + std::to_string(o.cores) + ")");
  if (o.processes < 1) bad("processes must be >= 1 (got " + std::to_string(o.processes) + ")");
  if (o.processes > o.cores)
    bad("processes (" + std::to_string(o.processes) + ") must not exceed cores (" + std::to_string(o.cores) +
        "): each worker needs at least one core");
  if (!o.memory.empty() && !parse_bytes(o.memory))
    bad("cannot read memory '" + o.memory + "' (e.g. 24GB, 4GiB, 500MB)");
  if (!o.memory.empty() && *parse_bytes(o.memory) == 0) bad("memory must be more than 0 (or empty for none)");
  try {
    worker::validate(o.memory_thresholds);
  } catch (const std::invalid_argument& e) {
    bad(e.what());
  }
  if (o.walltime.empty() || !valid_walltime(o.walltime))
    bad("walltime '" + o.walltime + "' is not a Slurm time (M, M:S, H:M:S, D-H, D-H:M or D-H:M:S)");
  if (o.plugin.empty()) bad("plugin (the task library the workers load) is required");
  if (o.job_name.empty() || o.job_name.find_first_of(" \t\n/'\"$") != std::string::npos)
    bad("job_name '" + o.job_name + "' must be non-empty without spaces, quotes, '$' or '/'");
  for (const auto& d : o.job_extra_directives)
    if (d.find('\n') != std::string::npos) bad("a job_extra_directive holds a newline: '" + d + "'");
  for (const auto& l : o.job_script_prologue)
    if (l.find('\n') != std::string::npos) bad("a job_script_prologue line holds a newline: '" + l + "'");
}

std::string shell_word(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                              "_./:=,+%@-") == std::string::npos)
    return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

namespace {
// local_directory may name shell variables ($TMPDIR, ${SLURM_JOB_ID}): double quotes keep them live.
std::string shell_word_with_variables(const std::string& word) {
  if (word.find('$') == std::string::npos) return shell_word(word);
  std::string out = "\"";
  for (char c : word) {
    if (c == '"' || c == '\\' || c == '`') out += '\\';
    out += c;
  }
  return out + "\"";
}
}  // namespace

std::string job_script(const ClusterOptions& o, const JobScriptPaths& paths) {
  validate(o);
  std::vector<std::string> header = {"-J " + o.job_name};
  if (!o.account.empty()) header.push_back("-A " + o.account);
  if (!o.queue.empty()) header.push_back("-p " + o.queue);
  header.push_back("-n 1");
  header.push_back("--cpus-per-task=" + std::to_string(o.cores));
  std::uint64_t memory = o.memory.empty() ? 0 : *parse_bytes(o.memory);
  if (memory) header.push_back("--mem=" + slurm_memory(memory));
  header.push_back("-t " + o.walltime);
  if (!paths.log_directory.empty()) {
    header.push_back("-o " + paths.log_directory + "/" + o.job_name + "-%j.out");
    header.push_back("-e " + paths.log_directory + "/" + o.job_name + "-%j.err");
  }
  std::ostringstream s;
  s << "#!/usr/bin/env bash\n\n";
  for (const auto& h : header) {
    bool skipped = false;
    for (const auto& skip : o.job_directives_skip) skipped = skipped || (!skip.empty() && h.find(skip) != std::string::npos);
    if (!skipped) s << "#SBATCH " << h << "\n";
  }
  for (const auto& d : o.job_extra_directives) s << "#SBATCH " << d << "\n";
  s << "\n";
  for (const auto& line : o.job_script_prologue) s << line << "\n";
  std::vector<std::string> cmd = {shell_word(paths.worker_executable), "--scheduler-file", shell_word(paths.scheduler_file),
                                  "--plugin", shell_word(o.plugin), "--nworkers", std::to_string(o.processes),
                                  "--nthreads", std::to_string(o.cores / o.processes)};
  if (memory) cmd.insert(cmd.end(), {"--memory-limit", std::to_string(memory / static_cast<std::uint64_t>(o.processes))});
  cmd.insert(cmd.end(), {"--name", "${SLURM_JOB_ID}"});
  if (!o.local_directory.empty()) cmd.insert(cmd.end(), {"--local-directory", shell_word_with_variables(o.local_directory)});
  // Thresholds only when not the workers' own defaults, so the usual script stays short.
  for (auto& a : worker::threshold_arguments(o.memory_thresholds, true)) cmd.push_back(std::move(a));
  if (!o.interface.empty()) cmd.insert(cmd.end(), {"--interface", shell_word(o.interface)});
  if (!o.log_level.empty()) cmd.insert(cmd.end(), {"--log-level", shell_word(o.log_level)});
  // One word with '=': a list starting with '-' would read as an option of its own.
  if (o.fast_paths != FastPaths::all()) cmd.push_back("--fast-paths=" + o.fast_paths.to_string());
  for (const auto& a : o.worker_extra_args) cmd.push_back(shell_word(a));
  for (std::size_t i = 0; i < cmd.size(); ++i) s << (i ? " " : "") << cmd[i];
  s << "\n";
  return s.str();
}

}  // namespace dtask::slurm

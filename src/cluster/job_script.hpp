// The Slurm batch script of a dtask::slurm::Cluster, built from its options: pure, no I/O, golden-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <dtask/slurm.hpp>

namespace dtask::slurm {

// What the script needs beyond the options: paths the Cluster decides at creation.
struct JobScriptPaths {
  std::string scheduler_file;     // the 0600 file with address and keys, on the shared filesystem
  std::string log_directory;      // where `-o`/`-e` put <job_name>-%j.out/.err
  std::string worker_executable;  // absolute path of dtask-worker
};

// Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (and "UNLIMITED"/"INFINITE").
bool valid_walltime(const std::string& text);
// Bytes rounded UP to Slurm's units as dask-jobqueue does (G, M or K), e.g. 24e9 -> "23G".
std::string slurm_memory(std::uint64_t bytes);

// Throws std::invalid_argument with a sentence naming the bad option (processes > cores, a memory
// string it cannot read, a walltime Slurm would not accept, no plugin, ...).
void validate(const ClusterOptions& options);

// The exact script sbatch receives (validate() first). The workers are named ${SLURM_JOB_ID}
// (with --nworkers N: ${SLURM_JOB_ID}-0..N-1), which is how the cluster maps workers to jobs.
std::string job_script(const ClusterOptions& options, const JobScriptPaths& paths);

// A word for bash: as is when it holds only safe characters, single-quoted otherwise.
std::string shell_word(const std::string& word);

}  // namespace dtask::slurm

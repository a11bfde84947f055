// The scheduler file (Dask's scheduler_file): how a client outside the job finds and joins it.
#pragma once

#include <string>

#include <dtask/types.hpp>

namespace dtask {

// Written atomically (temp + rename) with mode 0600, because it holds the job's secret key.
// `dashboard_link` (the dashboard's URL with its token; empty: none) is kept there too, like
// Jupyter's token in its 0600 runtime file.
void write_scheduler_file(const std::string& path, const std::string& address, const Security& sec,
                          const std::string& job_id, const std::string& dashboard_link = {});

struct SchedulerFile {
  ConnectOptions connect;
  std::string job_id;
  std::string dashboard_link;
  std::string error;  // set instead of throwing
  bool ok() const { return error.empty(); }
};
SchedulerFile read_scheduler_file(const std::string& path);

}  // namespace dtask

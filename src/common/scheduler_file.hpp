// The scheduler file (Dask's scheduler_file): how a client outside the job finds and joins it.
#pragma once

#include <string>

#include <dtask/types.hpp>

namespace dtask {

// Written atomically (temp + rename) with mode 0600, because it holds the job's secret key.
void write_scheduler_file(const std::string& path, const std::string& address, const Security& sec,
                          const std::string& job_id);

struct SchedulerFile {
  ConnectOptions connect;
  std::string job_id;
  std::string error;  // set instead of throwing
  bool ok() const { return error.empty(); }
};
SchedulerFile read_scheduler_file(const std::string& path);

}  // namespace dtask

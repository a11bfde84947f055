// The scheduler file (Dask's scheduler_file): how a client outside the job finds and joins it.
#include "common/scheduler_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"
#include "common/host.hpp"

namespace dtask {

void write_scheduler_file(const std::string& path, const std::string& address, const Security& sec,
                          const std::string& job_id, const std::string& dashboard_link) {
  nlohmann::json j = {{"address", address},
                      {"job_id", job_id},
                      {"pid", static_cast<long>(::getpid())},
                      {"host", hostname()},
                      {"secure", sec.enabled},
                      {"server_public", sec.server_public},
                      // Workers started from this file serve data as CURVE servers with the job's pair.
                      {"server_secret", sec.server_secret},
                      {"client_public", sec.client_public},
                      {"client_secret", sec.client_secret},
                      {"dashboard_link", dashboard_link}};
  if (auto why = write_file_atomically(path, j.dump(2) + "\n", 0600); !why.empty()) {
    throw std::runtime_error("cannot write scheduler file " + path + ": " + why);
  }
}

SchedulerFile read_scheduler_file(const std::string& path) {
  SchedulerFile out;
  std::ifstream f(path);
  if (!f) {
    out.error = "cannot read scheduler file " + path;
    return out;
  }
  try {
    auto j = nlohmann::json::parse(f);
    out.connect.address = j.at("address").get<std::string>();
    out.job_id = j.value("job_id", "");
    out.dashboard_link = j.value("dashboard_link", "");
    out.connect.security.enabled = j.value("secure", false);
    out.connect.security.server_public = j.value("server_public", "");
    out.connect.security.server_secret = j.value("server_secret", "");
    out.connect.security.client_public = j.value("client_public", "");
    out.connect.security.client_secret = j.value("client_secret", "");
  } catch (const std::exception& e) {
    out.error = "scheduler file " + path + " is not valid: " + e.what();
  }
  return out;
}

}  // namespace dtask

// A rank's role process (forked before MPI_Init): scheduler, client or worker. Never touches MPI.
#pragma once

#include <sys/types.h>

#include <functional>

#include <dtask/mpi.hpp>

namespace dtask::bootstrap {

// Runs in the child. Reads StartInfo and GoInfo from `from_parent`, writes one ChildReport to
// `to_parent`, then serves its role; returns the exit code for _exit.
int role_main(int from_parent, int to_parent, const mpi::RunOptions& options,
              const std::function<int(Client&)>& client_main);

// The parent's end of a rank's role process (both bootstraps: mpi_runner.cpp, slurm_bootstrap.cpp).
struct RoleProcess {
  pid_t pid = -1;
  int to_child = -1;    // StartInfo, then GoInfo
  int from_child = -1;  // one ChildReport
};
// Forks the role process (role_main in the child, which _exits with its code). In this process:
// SIGPIPE ignored, SIGTERM/SIGINT forwarded to the child and remembered (last_signal). pid -1 if
// the pipes or the fork failed (said on stderr).
RoleProcess start_role(const mpi::RunOptions& options, const std::function<int(Client&)>& client_main);
// Waits for the role process: its exit code, 128+signal if a signal ended it; stops forwarding.
int wait_role(pid_t pid);
// Signals go to nobody from now on (the role process was reaped elsewhere).
void role_reaped();
// The last SIGTERM/SIGINT this process got (0: none).
int last_signal();

}  // namespace dtask::bootstrap

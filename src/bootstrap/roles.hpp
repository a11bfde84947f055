// A rank's role process (forked before MPI_Init): scheduler, client or worker. Never touches MPI.
#pragma once

#include <functional>

#include <dtask/mpi.hpp>

namespace dtask::bootstrap {

// Runs in the child. Reads StartInfo and GoInfo from `from_parent`, writes one ChildReport to
// `to_parent`, then serves its role; returns the exit code for _exit.
int role_main(int from_parent, int to_parent, const mpi::RunOptions& options,
              const std::function<int(Client&)>& client_main);

}  // namespace dtask::bootstrap

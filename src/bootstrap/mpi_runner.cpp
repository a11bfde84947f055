// The MPI side of a rank (the only file that includes <mpi.h>): bootstrap, supervise, finish.
// (Bootstrap::slurm goes to slurm_bootstrap.cpp before any MPI call.)
//
// Each rank forks its role process before MPI_Init and supervises it. MPI carries only the
// business card (one Allreduce + one Bcast) and, at the end, the job's exit code. Why a child:
// Open MPI aborts the whole job when an MPI process dies, so a worker killed mid-graph would take
// everyone down; a dead role process is just a lost worker, and its rank still exits cleanly.
// The C API only: the deprecated C++ bindings do not compile cleanly with warnings as errors.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <dtask/mpi.hpp>

#include "bootstrap/business_card.hpp"
#include "bootstrap/roles.hpp"
#include "bootstrap/slurm_bootstrap.hpp"
#include "transport/transport.hpp"

namespace dtask::mpi {

namespace {
// Waits for a non-blocking collective without spinning a core (Open MPI busy-polls otherwise).
void wait_gently(MPI_Request& req) {
  int done = 0;
  while (true) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}
}  // namespace

int run(int argc, char** argv, const RunOptions& options, const std::function<int(Client&)>& client_main) {
  // srun without a working MPI plugin: everything below (MPI_Init included) is skipped.
  if (options.bootstrap == Bootstrap::slurm) return bootstrap::run_slurm(options, client_main);
  auto role = bootstrap::start_role(options, client_main);
  if (role.pid < 0) return 1;
  const pid_t child = role.pid;

  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  auto finish = [&](int code) {
    std::fflush(nullptr);
    MPI_Finalize();
    return code;
  };
  auto stop_child = [&] {
    bootstrap::GoInfo no{};
    no.go = 0;
    bootstrap::write_all(role.to_child, &no, sizeof no);
    bootstrap::wait_role(child);
  };

  const int needed = options.no_client ? 2 : 3;
  bootstrap::StartInfo si{rank, size};
  if (size < needed) {
    if (rank == 0) {
      std::fprintf(stderr,
                   "dtask: needs at least %d MPI ranks (rank 0 scheduler, %s), got %d: run with -n %d or more\n",
                   needed, options.no_client ? "the others workers" : "rank 1 client, the others workers", size,
                   needed);
    }
    bootstrap::write_all(role.to_child, &si, sizeof si);
    bootstrap::ChildReport ignored{};
    bootstrap::read_all(role.from_child, &ignored, sizeof ignored);
    stop_child();
    return finish(2);
  }
  bootstrap::write_all(role.to_child, &si, sizeof si);
  bootstrap::ChildReport report{};
  if (!bootstrap::read_all(role.from_child, &report, sizeof report)) {
    report.ok = 0;
    bootstrap::copy_field(report.message, sizeof report.message, "the role process died during startup");
  }
  int ok = report.ok, all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_ok) {
    if (!ok) std::fprintf(stderr, "dtask: rank %d on %s: %s\n", rank, transport::hostname().c_str(), report.message);
    stop_child();
    return finish(1);
  }
  bootstrap::BusinessCard card = report.card;
  MPI_Bcast(&card, sizeof card, MPI_BYTE, 0, MPI_COMM_WORLD);
  bootstrap::GoInfo go{};
  go.go = 1;
  go.card = card;
  bootstrap::write_all(role.to_child, &go, sizeof go);

  // Every rank leaves with rank 0's code: the scheduler exits with the client's return value.
  // Other ranks post the broadcast at once and watch both it and their role process: once
  // rank 0 has finished, a straggler (a worker that never reached the scheduler) is stopped
  // instead of holding the whole job until its own timeout.
  int code = 0;
  MPI_Request req;
  if (rank == 0) {
    code = bootstrap::wait_role(child);
    MPI_Ibcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD, &req);
    wait_gently(req);
    return finish(code);
  }
  MPI_Ibcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD, &req);
  bool child_done = false, job_done = false;
  auto job_done_at = std::chrono::steady_clock::now();
  while (!child_done || !job_done) {
    if (!child_done) {
      int status = 0;
      pid_t r = ::waitpid(child, &status, WNOHANG);
      if (r == child || (r < 0 && errno != EINTR)) {
        child_done = true;
        bootstrap::role_reaped();
      }
    }
    if (!job_done) {
      int flag = 0;
      MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      if (flag) {
        job_done = true;
        job_done_at = std::chrono::steady_clock::now();
        if (!child_done) ::kill(child, SIGTERM);
      }
    }
    if (job_done && !child_done && std::chrono::steady_clock::now() - job_done_at > std::chrono::seconds(5)) {
      ::kill(child, SIGKILL);
    }
    if (!child_done || !job_done) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return finish(code);
}

}  // namespace dtask::mpi

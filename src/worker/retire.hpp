// A worker leaving on its own (SIGTERM, Worker::retire): the rule's constants and how it goes.
//
// Purpose: a worker that is asked to leave (SIGTERM to its rank or to dtask-worker; later
//   scale-down and --lifetime) hands every result only it holds to another worker before it goes,
//   so nothing is recomputed and nothing lost, and the job goes on without it.
// Inputs: Worker::retire() (signal-safe; the loop calls WorkerState::retire at its next pass),
//   then the scheduler's FetchReplicas (to other workers) and WorkerMayLeave (to this one).
// Action (WorkerState, retire.cpp): RetireWorker to the scheduler with the tasks not started here
//   (withdrawn from the executor, or still waiting for inputs; TaskDones held back go with it);
//   tasks running here finish and are reported at once (never held back); ComputeTasks arriving later go back the same way,
//   StartTasks are answered NotStarted; the data server keeps serving. WorkerMayLeave ends the
//   loop with code 0 and the goodbye follows.
// Caveats: bounded by WorkerConfig::drain_timeout_ms (default 30 s): after that the worker leaves
//   anyway with one log line, and what it held alone is recomputed by the worker-loss path.
//   WorkerShutdown and a lost scheduler still end it at once. A second retire() more than
//   kRetireRepeatMs after the first is a second SIGTERM / Ctrl-C: stop now (Worker::retire).
#pragma once

#include <cstdint>

namespace dtask::worker {

// Signals that arrive together are one request: the rank's parent (or a supervisor) forwards the
// SIGTERM a process group also delivers directly. A second one later than this means "now".
inline constexpr std::uint64_t kRetireRepeatMs = 1000;

}  // namespace dtask::worker

// What a running task may ask about where it runs (Dask's get_worker()).
#pragma once

#include <string>

namespace dtask {

// The name of the worker running the calling task; empty outside a task.
std::string get_worker_name();

}  // namespace dtask

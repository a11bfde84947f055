// dtask::progress: a progress bar over futures while they run (Dask's distributed.progress).
#pragma once

#include <vector>

#include <dtask/client.hpp>
#include <dtask/types.hpp>

namespace dtask {

// Blocks until every future is done, drawing how many are (on options.out, stdout by default):
// on a terminal one bar redrawn in place at most every 100 ms,
//   [########                ]  34% | 340/1000 done | 2 erred | 3.2 s
// and otherwise (a batch job's log) the same text as a plain line every options.interval (10 s)
// and a last line once all are done. A failed or cancelled future counts as done and is shown
// as erred: progress() does not throw for it (result() or gather() will). It waits without
// spinning, so the thread costs nothing meanwhile. Throws std::invalid_argument for an empty
// Future, like Client::wait.
template <class T>
void progress(const std::vector<Future<T>>& futures, const ProgressOptions& options = {}) {
  detail::progress(detail::refs_of(futures, "dtask::progress"), options);
}
template <class T>
void progress(const Future<T>& future, const ProgressOptions& options = {}) {
  detail::progress({detail::Access::ref(future, "dtask::progress").get()}, options);
}

}  // namespace dtask

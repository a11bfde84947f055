// Integration tests' wait: poll the scheduler's view until a condition holds, with a generous bound.
#pragma once

#include <chrono>
#include <thread>

#include <dtask/dtask.hpp>

namespace dtask::test {

// Waits until `pred(scheduler_info())` holds; false if it still does not after 20 s (generous:
// every case settles within milliseconds on an idle machine, and must on a busy one too).
template <class Pred>
bool eventually(dtask::Client& c, Pred pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred(c.scheduler_info())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace dtask::test

// The one lock around FFTW's planner, shared by every part of the library that makes or destroys plans.
#pragma once

#include <mutex>

namespace dpsgd::detail {

// FFTW's planner (plan creation and destruction) is not thread-safe, across all plans of the
// process; executing a plan is. Every file that plans takes this lock (an inline function's static:
// one mutex in the whole library).
inline std::mutex& fftw_planner_mutex() {
  static std::mutex mutex;
  return mutex;
}

// Plans alive outside the PLD accountant's process-long cache (guarded by the planner lock). The
// cache calls fftw_cleanup() at exit so that leak checkers see a clean process; it must not while
// another object, one with static storage duration destroyed later, still holds plans.
inline int& fftw_plans_held_elsewhere() {
  static int count = 0;
  return count;
}

}  // namespace dpsgd::detail

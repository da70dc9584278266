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

}  // namespace dpsgd::detail

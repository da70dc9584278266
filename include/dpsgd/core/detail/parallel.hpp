// Helpers for OpenMP regions: exceptions never escape a parallel region, they are rethrown after it.
#pragma once

#include <exception>
#include <mutex>

#include <omp.h>

namespace dpsgd::detail {

// Collects the first exception thrown inside an OpenMP region; rethrow() after the region ends.
class ParallelExceptionTrap {
 public:
  template <typename Function>
  void run(Function&& function) noexcept {
    try {
      function();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!exception_) exception_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (exception_) std::rethrow_exception(exception_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr exception_;
};

// Whether a loop of `work` scalar operations is worth an OpenMP team: waking threads costs a few
// microseconds, which dominates small steps.
inline bool worth_parallel(long long work) { return work >= (1LL << 15) && omp_get_max_threads() > 1; }

}  // namespace dpsgd::detail

// passive_openmp_waits: restart the program with OMP_WAIT_POLICY=passive unless the user chose a policy.
#pragma once

#include <unistd.h>

#include <cstdlib>

namespace dpsgd_example {

// Why: GNU OpenMP's default lets a thread that reaches a barrier spin before it sleeps. With another
// busy process on the machine, the spinning thread takes CPU time from the thread that shares a core
// with that process, which everyone then waits for: the main job ran 1.80x slower beside one busy
// process at nice 0, and 1.40x with passive waits, which on this machine cost nothing when it is quiet
// (scripts/load_test.sh, docs/benchmarks.md). libgomp reads the policy from the environment when it
// is loaded, before main, so the program sets it and executes itself again (same process id,
// arguments and environment); done once, before any OpenMP region and before anything is read or
// written. An explicit OMP_WAIT_POLICY is kept, and if the restart fails the program runs on as it
// is.
inline void passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 0) != 0) return;
  ::execv("/proc/self/exe", argv);  // returns only on failure: go on with the default policy
}

}  // namespace dpsgd_example

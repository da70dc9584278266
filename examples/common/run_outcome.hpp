// How a training example reports its run: where it stands at the start, the stop message of an
// interrupted run, and exit statuses from errors.
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/stop_signal.hpp"
#include "dpsgd/optim/training_run.hpp"

namespace dpsgd_example {

// The run directory, whether the run is new or resumed (and how to continue it), the run's notes, and a
// warning on stderr when an explicit seed makes the run reproducible.
inline void print_run_state(const dpsgd::TrainingRun& run, bool explicit_seed) {
  const std::string state = run.resumed() ? "resumed at step " + std::to_string(run.next_step()) : "new";
  std::printf("run directory: %s (%s; continue it with --run-dir %s --resume)\n", run.directory().c_str(),
              state.c_str(), run.directory().c_str());
  for (const std::string& note : run.notes()) std::printf("note: %s\n", note.c_str());
  if (explicit_seed)
    std::fprintf(stderr, "note: explicit --seed makes this run reproducible; do not release its model as private\n");
  std::fflush(stdout);
}

// Says where a run stopped by a signal stands and how to continue it; returns the status to exit with.
inline int report_stop(const dpsgd::StopSignal& stop, const dpsgd::TrainingRun& run, double epsilon) {
  std::printf(
      "stopped by %s at step %llu (checkpoint saved, epsilon so far %.4f); continue with --run-dir %s --resume\n",
      stop.name(), static_cast<unsigned long long>(run.next_step()), epsilon, run.directory().c_str());
  return stop.exit_status();
}

// Runs the program's body and maps what it throws to the examples' statuses: 1 for another run's
// files (nothing was changed) and unexpected errors, 2 for the user's input (missing or corrupt
// data, a refused checkpoint, a bad argument).
template <typename Body>
int run_reporting_errors(Body&& body) {
  try {
    return body();
  } catch (const dpsgd::FileExists& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const dpsgd::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace dpsgd_example

// StopSignal: SIGINT and SIGTERM as a request that a training loop polls, so that a run stopped from
// outside ends after its current step, with a checkpoint, instead of in the middle of a file write.
#pragma once

namespace dpsgd {

// While an instance lives, the first SIGINT or SIGTERM only sets requested(); a second one takes the
// signal's default action (a user who presses Ctrl-C twice means it). The destructor restores the
// handlers that were installed before. At most one instance may exist at a time (InvalidArgument).
class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  bool requested() const;
  // The signal that asked to stop (SIGINT or SIGTERM), or 0.
  int signal() const;
  // The exit status a stopped program conventionally returns: 128 + signal(), or 0.
  int exit_status() const;
  // The signal's name ("SIGINT", "SIGTERM"), or "" if none arrived.
  const char* name() const;
};

}  // namespace dpsgd

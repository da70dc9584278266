// The exception types thrown by dpsgd and the DPSGD_CHECK_ARG macro that raises them at API boundaries.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dpsgd {

// Base of every exception dpsgd throws, so callers can catch the library's errors in one place.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A public function was called with an argument outside its documented domain.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A CUDA runtime or cuBLAS call failed; the message names the call and the error code.
class CudaError : public Error {
 public:
  using Error::Error;
};

// Reading or writing a file (or the OS random source) failed.
class IoError : public Error {
 public:
  using Error::Error;
};

// A file was read but its content is not what dpsgd wrote: truncated, corrupt, edited, or of an
// unknown format version. Never answered by silently starting afresh.
// A file that must not be replaced (a ledger, a run's state) already exists.
class FileExists : public IoError {
 public:
  using IoError::IoError;
};

class FormatError : public Error {
 public:
  using Error::Error;
};

// What DPSGD_CHECK_ARG throws: InvalidArgument("dpsgd::<function>: <message>").
[[noreturn]] inline void throw_invalid_argument(const char* function, const std::string& message) {
  throw InvalidArgument(std::string("dpsgd::") + function + ": " + message);
}

}  // namespace dpsgd

// Throws dpsgd::InvalidArgument("dpsgd::<function>: <message>") when `cond` is false. The message is
// a stream expression, e.g. DPSGD_CHECK_ARG(q > 0, "sampling_rate must be in (0, 1], got " << q).
#define DPSGD_CHECK_ARG(cond, message)                                          \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::ostringstream dpsgd_check_arg_stream_;                               \
      dpsgd_check_arg_stream_.precision(17);                                    \
      dpsgd_check_arg_stream_ << message;                                       \
      ::dpsgd::throw_invalid_argument(__func__, dpsgd_check_arg_stream_.str()); \
    }                                                                           \
  } while (false)

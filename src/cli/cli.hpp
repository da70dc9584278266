// dpsgd::cli::run: the dpsgd command line as a function, so that tests and the fuzzer drive it in-process.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace dpsgd::cli {

// Runs the command line on `args` (without the program name), writing results to `out` and one-line
// errors to `err`. Returns the exit status: 0 on success, 2 on bad arguments, 1 on other failures.
// With validate_only, parses and checks every argument and returns before any accounting, which is
// what the fuzzer exercises.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, bool validate_only = false);

}  // namespace dpsgd::cli

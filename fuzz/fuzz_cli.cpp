// libFuzzer target: argument handling of the dpsgd command line. The input is split at newlines into
// arguments; parsing and validation run (not the accounting), and every outcome must be success,
// help, or a usage error (status 2) -- never a crash or an unexpected failure (status 1).
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args(1);
  for (std::size_t i = 0; i < size && args.size() <= 32; ++i) {
    if (data[i] == '\n') {
      args.emplace_back();
    } else {
      args.back().push_back(static_cast<char>(data[i]));
    }
  }
  std::ostringstream out, err;
  const int status = dpsgd::cli::run(args, out, err, /*validate_only=*/true);
  dpsgd::fuzz::require(status == 0 || status == 2, "the CLI answers bad arguments with status 2");
  if (status == 2) dpsgd::fuzz::require(!err.str().empty(), "a usage error says what is wrong");
  return 0;
}

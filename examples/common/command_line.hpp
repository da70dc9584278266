// Command-line handling shared by the training examples: CLI11 parsing with the examples' exit statuses.
#pragma once

#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>
#include <string>

namespace dpsgd_example {

// Parses argv into `app`'s options. Returns the status to exit with when the program should stop now:
// 0 after --help (printed), 2 on a usage error (printed to stderr), or when --resume lacks --run-dir.
// `resume` and `run_dir` are the variables the --resume and --run-dir options write (read after parsing).
inline std::optional<int> parse_training_command_line(CLI::App& app, int argc, char** argv, const bool& resume,
                                                      const std::string& run_dir) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  if (resume && run_dir.empty()) {
    std::cerr << "error: --resume needs --run-dir\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace dpsgd_example

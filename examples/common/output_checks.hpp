// Checks the training examples make before any work: output files writable, run directory usable.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/training_run.hpp"

namespace dpsgd_example {

// Why the run directory cannot be used, or "".
inline std::string run_dir_problem(const std::string& run_dir, bool resume) {
  namespace fs = std::filesystem;
  const fs::path dir(run_dir);
  if (fs::exists(dir) && !fs::is_directory(dir)) return "is not a directory";
  if (!resume && fs::exists(dir) && !fs::is_empty(dir)) {
    return dpsgd::TrainingRun::definition_in(run_dir)
               ? "holds a run (its ledger exists): pass --resume to continue it, or choose another --run-dir "
                 "(nothing was changed)"
               : "exists and is not empty (nothing was changed)";
  }
  fs::path existing = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  while (!fs::exists(existing) && existing.has_parent_path() && existing != existing.parent_path())
    existing = existing.parent_path();
  if (fs::exists(existing) && ::access(existing.c_str(), W_OK) != 0 && !fs::exists(dir))
    return "cannot be created: " + existing.string() + " is not writable";
  return "";
}

// Output files (option name, path; empty paths are skipped) and the run directory, checked before any
// work: an unwritable path must not cost a whole training run. Prints the problem and returns false.
inline bool outputs_usable(const std::vector<std::pair<std::string, std::string>>& files, const std::string& run_dir,
                           bool resume) {
  try {
    for (const auto& [name, path] : files) dpsgd::validate_output_file(name, path);
  } catch (const dpsgd::InvalidArgument& e) {
    std::cerr << "error: " << e.what() << "\n";
    return false;
  }
  if (const std::string problem = run_dir_problem(run_dir, resume); !problem.empty()) {
    std::cerr << "error: --run-dir " << run_dir << " " << problem << "\n";
    return false;
  }
  return true;
}

}  // namespace dpsgd_example

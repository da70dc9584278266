// TrainingCheckpoint: the state a DP-SGD run needs to resume (parameters, optimiser, step, seed,
// ledger), saved atomically with a checksum and loaded with every field checked.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dpsgd/accounting/privacy_ledger.hpp"

namespace dpsgd {

struct TrainingCheckpoint {
  // Names the program (or model) that wrote it; a loader compares it with what it expects.
  std::string format;
  // Whatever defines the run (hyperparameters, data subset); resuming with other settings is the
  // caller's decision to refuse.
  nlohmann::json settings = nlohmann::json::object();
  std::uint64_t seed = 0;       // the run's seed, from which sampler and noise seeds derive
  std::uint64_t next_step = 0;  // the first step not yet applied to `params`
  std::vector<float> params;
  std::vector<double> optimizer_state;
  PrivacyLedger ledger;                             // every step charged when the checkpoint was written
  nlohmann::json extra = nlohmann::json::object();  // program-specific (e.g. evaluation history)
};

// One JSON document with an FNV-1a checksum over its content.
std::string checkpoint_to_string(const TrainingCheckpoint& checkpoint);

// Parses and checks a checkpoint: valid JSON, the checksum, the version, the type and range of every
// field (parameters and optimiser state finite), the embedded ledger (its own checksum and phases),
// and next_step <= the ledger's next step. Throws dpsgd::FormatError naming `source` and the first
// problem: a truncated, edited or hand-made file is refused, never half-loaded.
TrainingCheckpoint checkpoint_from_string(std::string_view text, const std::string& source = "checkpoint");

// Atomic write (temporary file, fsync, rename): a crash leaves the old checkpoint or the new one.
void save_checkpoint(const std::string& path, const TrainingCheckpoint& checkpoint);
// Throws IoError when the file cannot be read, FormatError as checkpoint_from_string.
TrainingCheckpoint load_checkpoint(const std::string& path);

}  // namespace dpsgd

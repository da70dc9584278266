// PrivacyLedger: the persistent record of every released step, answering epsilon at any time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dpsgd/accounting/epsilon_delta.hpp"
#include "dpsgd/accounting/privacy_accountant.hpp"
#include "dpsgd/core/atomic_file.hpp"

namespace dpsgd {

// Implements PrivacyAccountant for DpSgd: record() is called before each update is released. Steps
// with equal (q, sigma, N, capacity) are stored as one phase, so the ledger stays small for any
// run length. Step indices must increase: recording an index twice would mean reusing its noise.
//
// Persistence: save() writes JSON atomically (temporary file, fsync, rename) with a checksum; load()
// refuses a truncated, corrupt or edited file with dpsgd::FormatError instead of starting afresh.
// A persistent ledger saves itself inside every record() (write-ahead), so a crash can only
// over-count, and is never lost: no call replaces a ledger file other than its own, and a process
// holds an exclusive lock (<path>.lock) on the file it persists to.
class PrivacyLedger : public PrivacyAccountant {
 public:
  PrivacyLedger() = default;
  // A new run's ledger at `persist_path`: the file is created now, empty (dpsgd::FileExists if it
  // exists: continue that run with open(), or choose another path) and locked.
  explicit PrivacyLedger(std::string persist_path);
  // Continue the run whose ledger is at `path`: loads it (every charged step stays charged), locks it
  // and persists every further record() there.
  static PrivacyLedger open(const std::string& path);

  void record(const DpStepRecord& step) override;
  // Charges one Gaussian mechanism over the whole data set (sampling rate 1, noise multiplier > 0),
  // released once, before or between steps: a statistic of the data such as a normaliser's means.
  // Write-ahead like record(). Returns the release's index (0, 1, ...): the noise stream it must use,
  // so that no two releases share noise.
  std::uint32_t record_release(double noise_multiplier);
  // From now on, save to `path` inside every record() (write-ahead), e.g. for a ledger restored from a
  // checkpoint. `path` must not exist (dpsgd::FileExists), unless it is this ledger's own file.
  void persist_to(std::string path);
  // The file this ledger persists to, or "" for an in-memory ledger.
  const std::string& persist_path() const;

  const std::vector<TrainingPhase>& phases() const { return phases_; }
  // The noise multipliers of the whole-data-set releases, in the order they were charged.
  const std::vector<double>& releases() const { return releases_; }
  std::int64_t steps() const;
  // The first step index the ledger will accept: pass it to DpSgd::resume_at when resuming.
  std::uint64_t next_step() const { return next_step_; }

  // Whether this ledger continues `earlier`: the same history, possibly with more steps after it
  // (earlier's phases are a prefix of ours, its last one possibly grown; its releases a prefix of ours). Resuming from
  // a checkpoint that saw `earlier` with a ledger that does not continue it would account for another run.
  bool continues(const PrivacyLedger& earlier) const;

  // Of the steps and the releases composed; +inf if any step had noise multiplier 0; 0 before any.
  double epsilon(double delta, const AccountantOptions& options = {}) const;
  double delta(double epsilon, const AccountantOptions& options = {}) const;

  nlohmann::json to_json() const;
  static PrivacyLedger from_json(const nlohmann::json& document);
  // Writes a copy to `path`, which must not exist (dpsgd::FileExists) unless it is this ledger's own.
  void save(const std::string& path) const;
  static PrivacyLedger load(const std::string& path);

 private:
  // Every charged mechanism as the accountant composes it: the releases, then the steps.
  std::vector<TrainingPhase> charged() const;

  std::vector<TrainingPhase> phases_;
  std::vector<double> releases_;
  std::uint64_t next_step_ = 0;
  bool unbounded_ = false;  // a step without noise was released
  std::optional<std::string> persist_path_;
  std::shared_ptr<const FileLock> lock_;  // shared by the copies record() makes
};

}  // namespace dpsgd

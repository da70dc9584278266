// PrivacyLedger: the persistent record of every released step, answering epsilon at any time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dpsgd/accounting/accountant.hpp"
#include "dpsgd/optim/privacy_accountant.hpp"

namespace dpsgd {

// Implements PrivacyAccountant for DpSgd: record() is called before each update is released. Steps
// with equal (q, sigma, N, capacity) are stored as one phase, so the ledger stays small for any
// run length. Step indices must increase: recording an index twice would mean reusing its noise.
//
// Persistence: save() writes JSON atomically (temporary file, fsync, rename) with a checksum; load()
// refuses a truncated, corrupt or edited file with dpsgd::FormatError instead of starting afresh.
// Constructed with a path, the ledger saves itself inside every record() (write-ahead), so a crash
// can only over-count.
class PrivacyLedger : public PrivacyAccountant {
 public:
  PrivacyLedger() = default;
  explicit PrivacyLedger(std::string persist_path);

  void record(const DpStepRecord& step) override;
  // From now on, save to `path` inside every record() (write-ahead), e.g. after load().
  void persist_to(std::string path);

  const std::vector<TrainingPhase>& phases() const { return phases_; }
  std::int64_t steps() const;
  // The first step index the ledger will accept: pass it to DpSgd::resume_at when resuming.
  std::uint64_t next_step() const { return next_step_; }

  // +inf if any step had noise multiplier 0; 0 before any step.
  double epsilon(double delta, const AccountantOptions& options = {}) const;
  double delta(double epsilon, const AccountantOptions& options = {}) const;

  nlohmann::json to_json() const;
  static PrivacyLedger from_json(const nlohmann::json& document);
  void save(const std::string& path) const;
  static PrivacyLedger load(const std::string& path);

 private:
  std::vector<TrainingPhase> phases_;
  std::uint64_t next_step_ = 0;
  bool unbounded_ = false;  // a step without noise was released
  std::optional<std::string> persist_path_;
};

}  // namespace dpsgd

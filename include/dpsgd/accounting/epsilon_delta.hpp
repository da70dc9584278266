// epsilon_answer and delta_answer: the accountant's bound on a run's (epsilon, delta), PLD and RDP side by side.
#pragma once

#include <span>
#include <string>

#include "dpsgd/accounting/pld.hpp"
#include "dpsgd/accounting/training_phase.hpp"

namespace dpsgd {

enum class AccountantKind : int {
  kPld = 0,  // privacy loss distributions: tight, the default
  kRdp = 1,  // Renyi DP over dp_accounting's order grid: looser, very fast
};

// "pld" / "rdp"; parse_accountant_kind throws InvalidArgument for anything else.
std::string to_string(AccountantKind kind);
AccountantKind parse_accountant_kind(const std::string& name);

struct AccountantOptions {
  AccountantKind kind = AccountantKind::kPld;
  PldOptions pld;

  // Throws InvalidArgument for an unknown kind or out-of-range PLD options.
  void validate() const;
};

// An answer and where it came from. With the PLD accountant the RDP bound is always computed too
// (it costs microseconds) and the smaller of the two upper bounds is reported; `method` says which.
struct AccountingAnswer {
  double value = 0.0;  // epsilon or delta: an upper bound; epsilon +inf when no epsilon meets delta
  AccountantKind method = AccountantKind::kPld;
  // Empty unless there is something to know: the PLD fell back to RDP (and why), phases were
  // replaced by dominating ones, the answer is looser than the target accuracy.
  std::string note;
};

// The smallest delta the accountant answers for: below it the PLD's rounding bounds stop being negligible.
inline constexpr double kMinAccountedDelta = 1e-300;

// epsilon such that the run is (epsilon, delta)-DP under add/remove adjacency; an upper bound.
// With truncation (Chua et al. 2024): if the untruncated run is (eps, d)-DP and truncation happens
// with probability at most eta, the truncated run is (eps, d + (1 + e^eps) eta)-DP (a coupling of
// the two runs on each of the neighbouring datasets); +inf when delta cannot absorb that charge.
// delta must be in [kMinAccountedDelta, 1).
AccountingAnswer epsilon_answer(std::span<const TrainingPhase> phases, double delta,
                                const AccountantOptions& options = {});
double compute_epsilon(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options = {});

// delta such that the run is (epsilon, delta)-DP; an upper bound (1 when nothing better is known).
AccountingAnswer delta_answer(std::span<const TrainingPhase> phases, double epsilon,
                              const AccountantOptions& options = {});
double compute_delta(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options = {});

// Throws InvalidArgument unless delta is in [kMinAccountedDelta, 1): the deltas epsilon_answer takes.
void validate_accounted_delta(double delta);

}  // namespace dpsgd

// The accountant's public queries: epsilon, delta, noise and step calibration, with truncation.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "dpsgd/accounting/pld.hpp"

namespace dpsgd {

enum class AccountantKind : int {
  kPld = 0,  // privacy loss distributions: tight, the default
  kRdp = 1,  // Renyi DP over dp_accounting's order grid: looser, very fast
};

// "pld" / "rdp"; parse_accountant_kind throws InvalidArgument for anything else.
std::string to_string(AccountantKind kind);
AccountantKind parse_accountant_kind(const std::string& name);

// A phase of training and, optionally, the fixed capacity its Poisson batches were truncated to.
struct TrainingPhase {
  double sampling_rate = 0.0;
  double noise_multiplier = 0.0;
  std::int64_t steps = 0;
  // Truncated Poisson sampling: dataset size N and capacity B (both 0 when batches are not truncated).
  std::int64_t dataset_size = 0;
  std::int64_t capacity = 0;

  bool truncated() const { return capacity > 0; }
};

// Throws InvalidArgument naming the field of phases[index] that is out of range.
void validate_training_phase(const TrainingPhase& phase, std::size_t index = 0);

// eta = sum over truncated phases of T * Pr[Binomial(N + 1, q) > B]: the probability that any step of
// the run truncates, on the larger of two neighbouring datasets.
double truncation_probability(std::span<const TrainingPhase> phases);

struct AccountantOptions {
  AccountantKind kind = AccountantKind::kPld;
  PldOptions pld;
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

// epsilon such that the run is (epsilon, delta)-DP under add/remove adjacency; an upper bound.
// With truncation (Chua et al. 2024): if the untruncated run is (eps, d)-DP and truncation happens
// with probability at most eta, the truncated run is (eps, d + (1 + e^eps) eta)-DP (a coupling of
// the two runs on each of the neighbouring datasets); +inf when delta cannot absorb that charge.
// delta must be in [1e-300, 1).
AccountingAnswer epsilon_answer(std::span<const TrainingPhase> phases, double delta,
                                const AccountantOptions& options = {});
double compute_epsilon(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options = {});

// delta such that the run is (epsilon, delta)-DP; an upper bound (1 when nothing better is known).
AccountingAnswer delta_answer(std::span<const TrainingPhase> phases, double epsilon,
                              const AccountantOptions& options = {});
double compute_delta(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options = {});

// A calibrated noise multiplier with the accountant's answer for it (what epsilon_answer returns).
struct NoiseCalibration {
  double noise_multiplier = 0.0;
  AccountingAnswer answer;
};

// The smallest noise multiplier (within relative 1e-4) whose run of `steps` steps at `sampling_rate`
// meets (epsilon, delta); the result is verified: epsilon_answer(sigma) <= epsilon with the same
// options, and that answer comes with it. `dataset_size` and `capacity` > 0 add truncation. Throws
// InvalidArgument when no sigma <= 1e6 meets the target (or truncation leaves no room in delta), and
// dpsgd::Error if the verification fails.
NoiseCalibration calibrate_noise(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                 const AccountantOptions& options = {}, std::int64_t dataset_size = 0,
                                 std::int64_t capacity = 0);
// calibrate_noise(...).noise_multiplier.
double calibrate_noise_multiplier(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                  const AccountantOptions& options = {}, std::int64_t dataset_size = 0,
                                  std::int64_t capacity = 0);

// The largest number of steps (up to max_steps) at (sampling_rate, noise_multiplier) that stays within
// (epsilon, delta): compute_epsilon meets the target at the result, and fails it one step (above 10^5
// steps: 1e-5 of the count) later; 0 if even one step exceeds it.
std::int64_t calibrate_steps(double sampling_rate, double noise_multiplier, double epsilon, double delta,
                             const AccountantOptions& options = {}, std::int64_t max_steps = 100'000'000,
                             std::int64_t dataset_size = 0, std::int64_t capacity = 0);

}  // namespace dpsgd

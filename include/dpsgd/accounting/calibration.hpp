// calibrate_noise and calibrate_steps: the noise multiplier or step count that meets a privacy target.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/accounting/epsilon_delta.hpp"

namespace dpsgd {

// What calibrate_noise solves for: the run's shape and its target. Meant for designated initialisers:
//   calibrate_noise({.sampling_rate = q, .steps = T, .epsilon = 3.0, .delta = 1e-5});
struct NoiseCalibrationQuery {
  double sampling_rate = 0.0;
  std::int64_t steps = 0;
  double epsilon = 0.0;
  double delta = 0.0;
  // Truncated Poisson sampling: dataset size N and capacity B (both 0 when batches are not truncated).
  std::int64_t dataset_size = 0;
  std::int64_t capacity = 0;
  AccountantOptions options{};
};

// What calibrate_steps solves for.
struct StepCalibrationQuery {
  double sampling_rate = 0.0;
  double noise_multiplier = 0.0;
  double epsilon = 0.0;
  double delta = 0.0;
  std::int64_t max_steps = 100'000'000;
  std::int64_t dataset_size = 0;
  std::int64_t capacity = 0;
  AccountantOptions options{};
};

// A calibrated noise multiplier with the accountant's answer for it (what epsilon_answer returns).
struct NoiseCalibration {
  double noise_multiplier = 0.0;
  AccountingAnswer answer;
};

// The smallest noise multiplier (within relative 1e-4) whose run meets (epsilon, delta); the result
// is verified: epsilon_answer(sigma) <= epsilon with the same options, and that answer comes with it.
// Throws InvalidArgument when no sigma <= 1e6 meets the target (or truncation leaves no room in
// delta), and dpsgd::Error if the verification fails.
NoiseCalibration calibrate_noise(const NoiseCalibrationQuery& query);

// The same for a run whose ledger also holds `spent` (mechanisms charged before or beside it, such as
// a statistic released before training): the smallest noise multiplier (within relative 1e-4) with
// epsilon of `spent` and the run composed <= query.epsilon, verified the same way; the answer is the
// composition's. Throws InvalidArgument when `spent` alone leaves no room. calibrate_noise when empty.
NoiseCalibration calibrate_noise_after(std::span<const TrainingPhase> spent, const NoiseCalibrationQuery& query);

// The largest number of steps (up to max_steps) at (sampling_rate, noise_multiplier) that stays within
// (epsilon, delta): compute_epsilon meets the target at the result, and fails it one step (above 10^5
// steps: 1e-5 of the count) later; 0 if even one step exceeds it.
std::int64_t calibrate_steps(const StepCalibrationQuery& query);

// The same with positional arguments (the form of earlier releases).
NoiseCalibration calibrate_noise(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                 const AccountantOptions& options = {}, std::int64_t dataset_size = 0,
                                 std::int64_t capacity = 0);
// calibrate_noise(...).noise_multiplier.
double calibrate_noise_multiplier(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                  const AccountantOptions& options = {}, std::int64_t dataset_size = 0,
                                  std::int64_t capacity = 0);
std::int64_t calibrate_steps(double sampling_rate, double noise_multiplier, double epsilon, double delta,
                             const AccountantOptions& options = {}, std::int64_t max_steps = 100'000'000,
                             std::int64_t dataset_size = 0, std::int64_t capacity = 0);

}  // namespace dpsgd

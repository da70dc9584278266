// A white-box privacy audit of the DP-SGD step driver with gradient canaries (Nasr et al. 2021's
// strongest adversary): canaries are Dirac gradients, inserted into the data set at random, and the
// auditor sees every released noisy gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "dpsgd/audit/canary_auditor.hpp"

namespace dpsgd::audit {

struct GradientCanaryAuditConfig {
  double noise_multiplier = 1.0;     // the sigma the accountant is told about
  double sampling_rate = 0.1;        // q
  std::int64_t steps = 100;          // T
  std::int64_t canaries = 1000;      // m, each inserted with probability 1/2
  std::int64_t dataset_size = 1000;  // ordinary examples besides the canaries
  double clip_norm = 1.0;
  double delta = 1e-5;
  double alpha = 0.05;  // the audit's confidence is 1 - alpha
  // false: the DP-SGD step runs with sigma = 0 while the accountant is still told noise_multiplier.
  // This is the broken implementation that the auditor must catch.
  bool add_noise = true;
  std::uint64_t seed = 1;
};

struct GradientCanaryAuditResult {
  double claimed_epsilon = 0.0;  // PLD accountant, (q, noise_multiplier, T) at delta
  OneRunAudit one_run;           // Steinke et al. from this single training run
  ThresholdAudit threshold;      // Clopper-Pearson over the inserted vs not-inserted canary scores
  std::vector<double> scores;    // per canary: the log-likelihood ratio of the released gradients
  std::vector<std::uint8_t> inserted;
};

// Trains with dpsgd::DpSgd (SGD, the library's Poisson sampler, clipping and noise) on a data set of
// `dataset_size` ordinary examples (random gradients in coordinates the canaries do not use) plus
// the inserted canaries (canary i's gradient is clip_norm * e_i). After every step the auditor reads
// coordinate i of the released gradient sum y_t and scores canary i by the Neyman-Pearson statistic
// of the subsampled Gaussian, sum_t log(1 - q + q exp(y_t / (sigma C) / sigma - 1 / (2 sigma^2))),
// the most powerful test for the claimed mechanism. Throws InvalidArgument on bad settings.
GradientCanaryAuditResult run_gradient_canary_audit(const GradientCanaryAuditConfig& config);

}  // namespace dpsgd::audit

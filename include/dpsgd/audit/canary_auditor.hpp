// Empirical lower bounds on epsilon from canaries: Clopper-Pearson bounds over membership-test
// scores, and the one-run bound of Steinke, Nasr & Jagielski (2023).
#pragma once

#include <cstdint>
#include <span>

namespace dpsgd::audit {

struct ProportionInterval {
  double lower = 0.0;
  double upper = 1.0;
};

// Clopper-Pearson interval for `successes` out of `trials`: each side fails with probability at
// most alpha / 2 (the exact binomial tails, not a normal approximation). Throws InvalidArgument
// unless 0 <= successes <= trials, trials >= 1 and alpha in (0, 1).
ProportionInterval clopper_pearson(std::int64_t successes, std::int64_t trials, double alpha);

struct ThresholdAudit {
  double epsilon_lower_bound = 0.0;  // 0 when no threshold gives evidence of any leakage
  double threshold = 0.0;            // the score threshold that achieved it
  double true_positive_rate = 0.0;   // point estimates at that threshold
  double false_positive_rate = 0.0;
  int thresholds_tried = 0;
};

// Scores of canaries that were inserted (`in_scores`) and that were not (`out_scores`), higher
// meaning "more likely inserted". For each threshold t (up to `max_thresholds` quantiles of all
// scores), the test "score >= t" has a true and a false positive rate; (epsilon, delta)-DP implies
// TPR <= e^eps FPR + delta and (1 - FPR) <= e^eps (1 - TPR) + delta. Both rates are replaced by
// Clopper-Pearson bounds, Bonferroni-corrected over every threshold tried, so the returned bound
// holds with probability at least 1 - alpha whichever threshold wins (the canary-score auditing of
// Jagielski et al. 2020 and Nasr et al. 2021; JAX-Privacy's CanaryScoreAuditor reports the same
// quantity). Throws InvalidArgument on empty or non-finite scores, delta outside [0, 1), alpha
// outside (0, 1) or max_thresholds < 1.
ThresholdAudit threshold_epsilon_lower_bound(std::span<const double> in_scores, std::span<const double> out_scores,
                                             double delta, double alpha = 0.05, int max_thresholds = 64);

// The one-run bound (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run",
// Theorem 3.1 and its (epsilon, delta) extension): m canaries, each inserted independently with
// probability 1/2; the auditor guessed membership for r of them and was right v times. Returns the
// largest epsilon (to 1e-7 absolute) at which an (epsilon, delta)-DP algorithm would produce v or
// more correct guesses with probability below alpha, i.e. the algorithm is not (epsilon, delta)-DP
// for any smaller epsilon, at confidence 1 - alpha. Returns 0 when there is no evidence. Throws
// InvalidArgument unless 0 <= v <= r <= m, delta in [0, 1) and alpha in (0, 1).
double one_run_epsilon_lower_bound(std::int64_t m, std::int64_t r, std::int64_t v, double delta, double alpha = 0.05);

struct OneRunAudit {
  double epsilon_lower_bound = 0.0;
  std::int64_t guesses = 0;  // r: the k_plus highest scores guessed "in", the k_minus lowest "out"
  std::int64_t correct = 0;  // v
  int candidates_tried = 0;
};

// Runs the one-run audit from every canary's score and whether it was inserted: for a fixed grid of
// guess counts (k_plus = k_minus = k for k in m / 200, m / 100, ..., m / 2), guesses and scores
// each, and returns the best bound with alpha Bonferroni-split over the grid. Throws
// InvalidArgument on mismatched sizes, fewer than 2 canaries, non-finite scores, or bad delta/alpha.
OneRunAudit one_run_audit(std::span<const double> scores, std::span<const std::uint8_t> inserted, double delta,
                          double alpha = 0.05);

}  // namespace dpsgd::audit

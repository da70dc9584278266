// Empirical epsilon lower bounds: Clopper-Pearson threshold audits and the one-run bound.
#include "dpsgd/audit/canary_auditor.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd::audit {
namespace {

// Pr[Binomial(n, p) >= k].
double at_least(std::int64_t n, double p, std::int64_t k) { return binomial_upper_tail(n, p, k - 1); }

// The p in [0, 1] where the increasing function f(p) crosses `target`, by bisection (f continuous).
template <typename F>
double solve_increasing(F f, double target) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (f(mid) < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

void check_alpha_delta(double delta, double alpha) {
  DPSGD_CHECK_ARG(std::isfinite(delta) && delta >= 0.0 && delta < 1.0, "delta must be in [0, 1), got " << delta);
  DPSGD_CHECK_ARG(std::isfinite(alpha) && alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1), got " << alpha);
}

void check_scores(std::span<const double> scores, const char* name) {
  DPSGD_CHECK_ARG(!scores.empty(), name << " must not be empty");
  for (std::size_t i = 0; i < scores.size(); ++i) {
    DPSGD_CHECK_ARG(std::isfinite(scores[i]), name << "[" << i << "] must be finite, got " << scores[i]);
  }
}

// Number of entries of sorted `v` that are >= t.
std::int64_t count_at_least(const std::vector<double>& v, double t) {
  return static_cast<std::int64_t>(v.end() - std::lower_bound(v.begin(), v.end(), t));
}

// log(a / b) when the evidence is positive, else 0.
double log_ratio(double a, double b) { return (a > 0.0 && b > 0.0 && a > b) ? std::log(a / b) : 0.0; }

}  // namespace

ProportionInterval clopper_pearson(std::int64_t successes, std::int64_t trials, double alpha) {
  DPSGD_CHECK_ARG(trials >= 1, "trials must be >= 1, got " << trials);
  DPSGD_CHECK_ARG(successes >= 0 && successes <= trials,
                  "successes must be in [0, trials = " << trials << "], got " << successes);
  DPSGD_CHECK_ARG(std::isfinite(alpha) && alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1), got " << alpha);
  ProportionInterval interval;
  // Lower: the p at which Pr[X >= k] = alpha / 2 (increasing in p).
  if (successes > 0)
    interval.lower = solve_increasing([&](double p) { return at_least(trials, p, successes); }, alpha / 2);
  // Upper: the p at which Pr[X <= k] = alpha / 2, i.e. Pr[X >= k + 1] = 1 - alpha / 2.
  if (successes < trials) {
    interval.upper = solve_increasing([&](double p) { return at_least(trials, p, successes + 1); }, 1.0 - alpha / 2);
  }
  return interval;
}

ThresholdAudit threshold_epsilon_lower_bound(std::span<const double> in_scores, std::span<const double> out_scores,
                                             double delta, double alpha, int max_thresholds) {
  check_scores(in_scores, "in_scores");
  check_scores(out_scores, "out_scores");
  check_alpha_delta(delta, alpha);
  DPSGD_CHECK_ARG(max_thresholds >= 1, "max_thresholds must be >= 1, got " << max_thresholds);
  std::vector<double> in(in_scores.begin(), in_scores.end()), out(out_scores.begin(), out_scores.end());
  std::sort(in.begin(), in.end());
  std::sort(out.begin(), out.end());
  std::vector<double> all(in);
  all.insert(all.end(), out.begin(), out.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  // Candidate thresholds: evenly spaced order statistics of the distinct scores.
  std::vector<double> thresholds;
  const std::size_t count = std::min<std::size_t>(all.size(), static_cast<std::size_t>(max_thresholds));
  for (std::size_t i = 0; i < count; ++i) thresholds.push_back(all[(i * all.size()) / count]);
  thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());

  ThresholdAudit best;
  best.thresholds_tried = static_cast<int>(thresholds.size());
  // Two one-sided bounds per threshold, each at alpha / (2 k): a union bound over all of them.
  const double per_interval = alpha / static_cast<double>(thresholds.size());
  const auto n_in = static_cast<std::int64_t>(in.size()), n_out = static_cast<std::int64_t>(out.size());
  for (const double t : thresholds) {
    const std::int64_t tp = count_at_least(in, t), fp = count_at_least(out, t);
    const ProportionInterval tpr = clopper_pearson(tp, n_in, per_interval);
    const ProportionInterval fpr = clopper_pearson(fp, n_out, per_interval);
    const double eps =
        std::max(log_ratio(tpr.lower - delta, fpr.upper), log_ratio(1.0 - fpr.upper - delta, 1.0 - tpr.lower));
    if (eps > best.epsilon_lower_bound || (best.epsilon_lower_bound == 0.0 && t == thresholds.front())) {
      best.epsilon_lower_bound = eps;
      best.threshold = t;
      best.true_positive_rate = static_cast<double>(tp) / static_cast<double>(n_in);
      best.false_positive_rate = static_cast<double>(fp) / static_cast<double>(n_out);
    }
  }
  return best;
}

namespace {

// The p-value of v or more correct guesses out of r under (eps, delta)-DP: Pr[Binomial(r, p_eps) >= v]
// plus the delta term of Steinke, Nasr & Jagielski (2023): 2 m delta max_{1<=i<=v} Pr[v > B >= v - i] / i
// with B ~ Binomial(r, p_eps), p_eps = e^eps / (1 + e^eps).
double one_run_p_value(std::int64_t m, std::int64_t r, std::int64_t v, double epsilon, double delta) {
  const double p = 1.0 / (1.0 + std::exp(-epsilon));
  double tail = at_least(r, p, v);
  if (delta > 0.0) {
    double window = 0.0, worst = 0.0;
    for (std::int64_t i = 1; i <= v; ++i) {
      window += std::exp(binomial_log_pmf(r, p, v - i));
      worst = std::max(worst, window / static_cast<double>(i));
    }
    tail += worst * delta * 2.0 * static_cast<double>(m);
  }
  return std::min(tail, 1.0);
}

}  // namespace

double one_run_epsilon_lower_bound(std::int64_t m, std::int64_t r, std::int64_t v, double delta, double alpha) {
  DPSGD_CHECK_ARG(r >= 0 && r <= m, "r (guesses) must be in [0, m = " << m << "], got " << r);
  DPSGD_CHECK_ARG(v >= 0 && v <= r, "v (correct guesses) must be in [0, r = " << r << "], got " << v);
  check_alpha_delta(delta, alpha);
  if (v == 0 || one_run_p_value(m, r, v, 0.0, delta) >= alpha) return 0.0;
  // p-value increases with epsilon: find where it reaches alpha.
  double lo = 0.0, hi = 1.0;
  while (one_run_p_value(m, r, v, hi, delta) < alpha && hi < 1e3) hi *= 2.0;
  while (hi - lo > 1e-7) {
    const double mid = 0.5 * (lo + hi);
    (one_run_p_value(m, r, v, mid, delta) < alpha ? lo : hi) = mid;
  }
  return lo;
}

OneRunAudit one_run_audit(std::span<const double> scores, std::span<const std::uint8_t> inserted, double delta,
                          double alpha) {
  DPSGD_CHECK_ARG(scores.size() == inserted.size(),
                  "scores.size() = " << scores.size() << " must equal inserted.size() = " << inserted.size());
  DPSGD_CHECK_ARG(scores.size() >= 2, "the one-run audit needs at least 2 canaries, got " << scores.size());
  check_scores(scores, "scores");
  check_alpha_delta(delta, alpha);
  const auto m = static_cast<std::int64_t>(scores.size());
  std::vector<std::int64_t> order(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) order[static_cast<std::size_t>(i)] = i;
  // Highest score first; ties broken by index so that the guesses do not depend on sort stability.
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return scores[static_cast<std::size_t>(a)] != scores[static_cast<std::size_t>(b)]
               ? scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)]
               : a < b;
  });
  std::vector<std::int64_t> grid;
  for (const std::int64_t divisor : {200, 100, 50, 20, 10, 5, 2}) {
    const std::int64_t k = std::max<std::int64_t>(1, m / divisor);
    if (grid.empty() || grid.back() != k) grid.push_back(std::min(k, m / 2));
  }
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  OneRunAudit best;
  best.candidates_tried = static_cast<int>(grid.size());
  for (const std::int64_t k : grid) {
    std::int64_t correct = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      correct += inserted[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])] != 0;
      correct += inserted[static_cast<std::size_t>(order[static_cast<std::size_t>(m - 1 - j)])] == 0;
    }
    const double eps = one_run_epsilon_lower_bound(m, 2 * k, correct, delta, alpha / static_cast<double>(grid.size()));
    if (eps >= best.epsilon_lower_bound) {
      best.epsilon_lower_bound = eps;
      best.guesses = 2 * k;
      best.correct = correct;
    }
  }
  return best;
}

}  // namespace dpsgd::audit

// Reducing Gaussian phases: merging equal ones and, when there are too many, rounding to dominating ones.
#include "dpsgd/accounting/detail/phase_reduction.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>

namespace dpsgd::detail {
namespace {

// Merges phases with equal (q, sigma), in order of first appearance, as far as the step counts fit.
std::vector<GaussianPhase> merge_equal(const std::vector<GaussianPhase>& phases) {
  std::map<std::pair<double, double>, std::size_t> index;
  std::vector<GaussianPhase> merged;
  for (const GaussianPhase& phase : phases) {
    const auto key = std::make_pair(phase.sampling_rate, phase.noise_multiplier);
    const auto found = index.find(key);
    if (found == index.end()) {
      index.emplace(key, merged.size());
      merged.push_back(phase);
      continue;
    }
    GaussianPhase& into = merged[found->second];
    if (into.steps > std::numeric_limits<std::int64_t>::max() - phase.steps) {
      // The sum does not fit in a step count: keep the phase separate (and start a new slot for
      // later equal phases).
      found->second = merged.size();
      merged.push_back(phase);
      continue;
    }
    into.steps += phase.steps;
  }
  return merged;
}

// The smallest power of r at or above x, and the largest at or below it.
double round_up(double x, double log_r) {
  double y = std::exp(std::ceil(std::log(x) / log_r) * log_r);
  while (y < x) y *= std::exp(log_r);
  return y;
}
double round_down(double x, double log_r) {
  double y = std::exp(std::floor(std::log(x) / log_r) * log_r);
  while (y > x) y /= std::exp(log_r);
  return y;
}

}  // namespace

ReducedPhases reduce_phases(std::span<const GaussianPhase> phases, std::size_t max_phases) {
  std::vector<GaussianPhase> active;
  for (const GaussianPhase& phase : phases) {
    if (phase.sampling_rate > 0.0 && phase.steps > 0) active.push_back(phase);
  }
  ReducedPhases result;
  result.phases = merge_equal(active);
  double log_r = std::log1p(std::ldexp(1.0, -12));
  while (result.phases.size() > std::max<std::size_t>(max_phases, 1)) {
    std::vector<GaussianPhase> rounded;
    for (const GaussianPhase& phase : active) {
      rounded.push_back({std::min(1.0, round_up(phase.sampling_rate, log_r)), round_down(phase.noise_multiplier, log_r),
                         phase.steps});
    }
    result.phases = merge_equal(rounded);
    result.ratio = std::exp(log_r);
    log_r *= 2.0;
  }
  return result;
}

}  // namespace dpsgd::detail

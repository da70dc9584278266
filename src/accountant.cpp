// Accountant queries over training phases: PLD or RDP, truncation, and calibration by bracketing.
#include "dpsgd/accounting/accountant.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<GaussianPhase> mechanisms(std::span<const TrainingPhase> phases) {
  DPSGD_CHECK_ARG(!phases.empty(), "phases must hold at least one phase");
  std::vector<GaussianPhase> result;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    validate_training_phase(phases[k], k);
    result.push_back({phases[k].sampling_rate, phases[k].noise_multiplier, phases[k].steps});
  }
  return result;
}

void validate_kind(AccountantKind kind) {
  DPSGD_CHECK_ARG(kind == AccountantKind::kPld || kind == AccountantKind::kRdp,
                  "options.kind must be AccountantKind::kPld or kRdp, got " << static_cast<int>(kind));
}

double untruncated_epsilon(std::span<const GaussianPhase> phases, double delta, const AccountantOptions& options) {
  if (options.kind == AccountantKind::kRdp)
    return rdp_to_epsilon(default_rdp_orders(), rdp_of_phases(phases), delta).value;
  return pld_epsilon(phases, delta, options.pld).value;
}

double untruncated_delta(std::span<const GaussianPhase> phases, double epsilon, const AccountantOptions& options) {
  if (options.kind == AccountantKind::kRdp)
    return rdp_to_delta(default_rdp_orders(), rdp_of_phases(phases), epsilon).value;
  return pld_delta(phases, epsilon, options.pld).value;
}

}  // namespace

std::string to_string(AccountantKind kind) { return kind == AccountantKind::kRdp ? "rdp" : "pld"; }

AccountantKind parse_accountant_kind(const std::string& name) {
  if (name == "pld") return AccountantKind::kPld;
  if (name == "rdp") return AccountantKind::kRdp;
  DPSGD_CHECK_ARG(false, "accountant must be \"pld\" or \"rdp\", got \"" << name << "\"");
  return AccountantKind::kPld;
}

void validate_training_phase(const TrainingPhase& phase, std::size_t index) {
  DPSGD_CHECK_ARG(std::isfinite(phase.sampling_rate) && phase.sampling_rate > 0.0 && phase.sampling_rate <= 1.0,
                  "phases[" << index << "].sampling_rate must be in (0, 1], got " << phase.sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(phase.noise_multiplier) && phase.noise_multiplier > 0.0,
                  "phases[" << index << "].noise_multiplier must be finite and > 0, got " << phase.noise_multiplier);
  DPSGD_CHECK_ARG(phase.steps >= 1, "phases[" << index << "].steps must be >= 1, got " << phase.steps);
  DPSGD_CHECK_ARG((phase.dataset_size == 0) == (phase.capacity == 0),
                  "phases[" << index
                            << "]: dataset_size and capacity must both be set for truncation or both be 0, got "
                            << phase.dataset_size << " and " << phase.capacity);
  DPSGD_CHECK_ARG(phase.dataset_size >= 0 && phase.capacity >= 0,
                  "phases[" << index << "]: dataset_size and capacity must be >= 0, got " << phase.dataset_size
                            << " and " << phase.capacity);
}

double truncation_probability(std::span<const TrainingPhase> phases) {
  double eta = 0.0;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    validate_training_phase(phases[k], k);
    if (!phases[k].truncated()) continue;
    eta += static_cast<double>(phases[k].steps) *
           binomial_upper_tail(phases[k].dataset_size + 1, phases[k].sampling_rate, phases[k].capacity);
  }
  return std::min(eta, 1.0);
}

double compute_epsilon(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options) {
  validate_delta(delta);
  validate_kind(options.kind);
  const std::vector<GaussianPhase> base = mechanisms(phases);
  const double eta = truncation_probability(phases);
  if (eta == 0.0) return untruncated_epsilon(base, delta, options);
  // The smallest eps with delta_base(eps) + (1 + e^eps) eta <= delta. The charge grows with eps, so
  // eps <- eps_base(delta - (1 + e^eps) eta) climbs from eps = 0 towards the fixed point, every
  // iterate below it; a delta query then confirms the inequality, stepping eps up until it holds.
  if (delta <= 2.0 * eta) return kInf;
  double epsilon = 0.0;
  for (int round = 0; round < 3; ++round) {
    const double remaining = delta - (1.0 + std::exp(epsilon)) * eta;
    if (!(remaining > 0.0)) return kInf;
    epsilon = std::max(untruncated_epsilon(base, remaining, options), 1e-9);
    if (!std::isfinite(epsilon)) return kInf;
  }
  for (int step = 0; step < 100; ++step, epsilon *= 1.0 + 2e-4) {
    if (untruncated_delta(base, epsilon, options) + (1.0 + std::exp(epsilon)) * eta <= delta) return epsilon;
  }
  return kInf;
}

double compute_delta(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options) {
  validate_epsilon(epsilon);
  validate_kind(options.kind);
  const std::vector<GaussianPhase> base = mechanisms(phases);
  const double eta = truncation_probability(phases);
  return std::min(1.0, untruncated_delta(base, epsilon, options) + (1.0 + std::exp(epsilon)) * eta);
}

double calibrate_noise_multiplier(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                  const AccountantOptions& options, std::int64_t dataset_size, std::int64_t capacity) {
  validate_epsilon(epsilon);
  validate_delta(delta);
  validate_training_phase(TrainingPhase{sampling_rate, 1.0, steps, dataset_size, capacity});
  // Bracket [low, high] with epsilon(low) > target >= epsilon(high); RDP is an upper bound on PLD,
  // so an RDP-feasible sigma is a valid upper end and usually a tight one.
  AccountantOptions rdp = options;
  rdp.kind = AccountantKind::kRdp;
  double high = 1.0;
  const auto rdp_epsilon_at = [&](double sigma) {
    const TrainingPhase phase{sampling_rate, sigma, steps, dataset_size, capacity};
    return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, rdp);
  };
  while (rdp_epsilon_at(high) > epsilon) {
    high *= 2.0;
    DPSGD_CHECK_ARG(high <= 1e4, "no noise multiplier up to 1e4 reaches epsilon = "
                                     << epsilon << " at delta = " << delta << " (truncation may use up delta)");
  }
  // Tighten the RDP bracket to 1% by bisection: RDP queries take microseconds.
  {
    double rdp_low = high / 2.0;
    while (high / rdp_low > 1.01) {
      const double mid = std::sqrt(rdp_low * high);
      (rdp_epsilon_at(mid) <= epsilon ? high : rdp_low) = mid;
    }
  }
  // The grid the PLD refinement settles on for the RDP sigma serves every sigma of the search: each
  // answer on it is still an upper bound, and one composition per query instead of three keeps the
  // calibration within a few queries' time.
  // The search tolerates 5e-4 of grid error (the answers stay upper bounds, so the result is at most
  // a few 1e-4 above the smallest sigma), and the last check below uses the caller's options.
  AccountantOptions search = options;
  if (options.kind == AccountantKind::kPld && options.pld.fixed_grid == 0.0) {
    PldOptions coarse = options.pld;
    coarse.relative_error = std::max(coarse.relative_error, 5e-4);
    const GaussianPhase at_high{sampling_rate, high, steps};
    search.pld.fixed_grid = pld_epsilon(std::span<const GaussianPhase>(&at_high, 1), delta, coarse).grid;
  }
  const auto epsilon_at = [&](double sigma) {
    const TrainingPhase phase{sampling_rate, sigma, steps, dataset_size, capacity};
    return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, search);
  };
  // Regula falsi on log sigma with the Illinois modification; the invariant keeps high feasible.
  // Once epsilon(high) is within 1e-5 of the target, probing just below high closes the bracket
  // instead of creeping towards the root from one side.
  // On the fixed grid, aim below the target by twice the refinement's tolerance, so that the adaptive
  // answer callers get (within that tolerance of the fixed-grid one) lands under the target.
  const double aim =
      options.kind == AccountantKind::kPld ? epsilon * (1.0 - 2.0 * options.pld.relative_error) : epsilon;
  // log epsilon is close to linear in log sigma, so regula falsi on the logs converges in a few steps.
  const auto f = [&](double sigma) { return std::log(epsilon_at(sigma)) - std::log(aim); };
  // PLD needs less noise than RDP, typically 5-25% less: step down in 15% strides to bracket.
  double f_high = f(high);
  while (f_high > 0.0) {  // the fixed grid can differ from RDP's feasibility by a hair
    high *= 1.01;
    f_high = f(high);
  }
  double low = high * 0.85, f_low = f(low);
  while (f_low <= 0.0) {
    high = low;
    f_high = f_low;
    low *= 0.85;
    DPSGD_CHECK_ARG(low > 1e-6, "epsilon = " << epsilon << " is met by any noise multiplier above 1e-6");
    f_low = f(low);
  }
  int stale_side = 0;
  for (int it = 0; it < 60 && high / std::max(low, 1e-300) - 1.0 > 1e-4; ++it) {
    double mid;
    const bool probe = f_high > -1e-5;
    if (probe) {
      mid = high * (1.0 - 1e-4);
    } else if (std::isfinite(f_low) && f_low != f_high) {
      const double a = std::log(low), b = std::log(high);
      mid = std::exp(b - f_high * (b - a) / (f_high - f_low));
      mid = std::clamp(mid, low + 0.01 * (high - low), high - 0.01 * (high - low));
    } else {
      mid = std::sqrt(low * high);
    }
    const double f_mid = f(mid);
    if (f_mid <= 0.0) {
      high = mid;
      f_high = f_mid;
      if (stale_side == -1 && std::isfinite(f_low)) f_low /= 2.0;
      stale_side = -1;
    } else {
      if (probe) break;  // sigma 1e-4 below high misses the target: high is the answer
      low = mid;
      f_low = f_mid;
      if (stale_side == 1) f_high /= 2.0;
      stale_side = 1;
    }
  }
  // The search ran on one fixed grid; the promise is about compute_epsilon as callers run it.
  const auto epsilon_as_called = [&](double sigma) {
    const TrainingPhase phase{sampling_rate, sigma, steps, dataset_size, capacity};
    return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, options);
  };
  for (int guard = 0; guard < 50 && epsilon_as_called(high) > epsilon; ++guard) high *= 1.0 + 2e-4;
  return high;
}

std::int64_t calibrate_steps(double sampling_rate, double noise_multiplier, double epsilon, double delta,
                             const AccountantOptions& options, std::int64_t max_steps, std::int64_t dataset_size,
                             std::int64_t capacity) {
  validate_epsilon(epsilon);
  validate_delta(delta);
  DPSGD_CHECK_ARG(max_steps >= 1, "max_steps must be >= 1, got " << max_steps);
  validate_training_phase(TrainingPhase{sampling_rate, noise_multiplier, 1, dataset_size, capacity});
  const auto fits = [&](std::int64_t steps) {
    const TrainingPhase phase{sampling_rate, noise_multiplier, steps, dataset_size, capacity};
    return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, options) <= epsilon;
  };
  if (!fits(1)) return 0;
  std::int64_t good = 1, bad = 2;
  while (bad <= max_steps && fits(bad)) {
    good = bad;
    bad *= 2;
  }
  if (bad > max_steps) {
    if (fits(max_steps)) return max_steps;
    bad = max_steps;
  }
  while (bad - good > 1) {
    const std::int64_t mid = good + (bad - good) / 2;
    (fits(mid) ? good : bad) = mid;
  }
  return good;
}

}  // namespace dpsgd

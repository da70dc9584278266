// Accountant queries over training phases: PLD and RDP side by side, truncation, and verified calibration.
#include "dpsgd/accounting/accountant.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <sstream>
#include <vector>

#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Smallest delta the accountant answers for (see PldOptions: below it rounding bounds stop being
// negligible).
constexpr double kMinDelta = 1e-300;
// Largest noise multiplier calibration searches.
constexpr double kMaxNoiseMultiplier = 1e6;

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

void validate_query_delta(double delta) {
  validate_delta(delta);
  DPSGD_CHECK_ARG(delta >= kMinDelta, "delta must be in [1e-300, 1), got " << delta);
}

// (1 + e^eps) eta: what truncation adds to delta at epsilon; +inf where e^eps overflows.
double truncation_charge(double epsilon, double eta) {
  if (eta == 0.0) return 0.0;
  return eta + std::exp(epsilon + std::log(eta));
}

// The RDP curve, with the series of fractional orders summed only within 1.5 of the order that the
// chord-only curve's conversion picks (`best_order`); chords elsewhere.
template <typename BestOrder>
std::vector<double> rdp_curve_for(const std::vector<GaussianPhase>& base, BestOrder&& best_order) {
  const double order = best_order(detail::rdp_of_phases_focused(base, 0.0, 0.0));
  return detail::rdp_of_phases_focused(base, order - 1.5, order + 1.5);
}

// RDP epsilon with the truncation charge: the smallest eps with (eps, delta - charge(eps)) implied by
// the RDP curve, by the fixed-point iteration that climbs to it from 0.
double rdp_epsilon(const std::vector<GaussianPhase>& base, double delta, double eta) {
  const std::vector<double> curve = rdp_curve_for(base, [&](const std::vector<double>& c) {
    return rdp_to_epsilon(default_rdp_orders(), c, std::max(delta - 2.0 * eta, 1e-300)).order;
  });
  const auto at = [&](double d) { return rdp_to_epsilon(default_rdp_orders(), curve, d).value; };
  if (eta == 0.0) return at(delta);
  double eps = 0.0;
  for (int round = 0; round < 60; ++round) {
    const double remaining = delta - truncation_charge(eps, eta);
    if (!(remaining > 0.0)) return kInf;
    const double next = at(remaining);
    if (!std::isfinite(next)) return kInf;
    if (next <= eps) return eps;  // (next, remaining)-DP implies (eps, remaining)-DP
    eps = next + 1e-12 * (1.0 + next);
    const double left = delta - truncation_charge(eps, eta);
    if (left > 0.0 && at(left) <= eps) return eps;
  }
  return kInf;
}

std::string describe(const char* what, double value) {
  std::ostringstream out;
  out.precision(4);
  out << what << value;
  return out.str();
}

AccountingAnswer truncation_refusal(double eta, double delta, AccountantKind kind) {
  std::ostringstream note;
  note.precision(4);
  note << "truncation probability " << eta << " leaves no room in delta = " << delta
       << " (the charge (1 + e^eps) eta must stay below delta): raise the capacity";
  return {kInf, kind, note.str()};
}

// The epsilon reported for one sigma during calibration: the accountant's answer with `options`.
double epsilon_at(double q, double sigma, std::int64_t steps, std::int64_t n, std::int64_t capacity, double delta,
                  const AccountantOptions& options) {
  const TrainingPhase phase{q, sigma, steps, n, capacity};
  return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, options);
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

AccountingAnswer epsilon_answer(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options) {
  validate_query_delta(delta);
  validate_kind(options.kind);
  options.pld.validate();
  const std::vector<GaussianPhase> base = mechanisms(phases);
  const double eta = truncation_probability(phases);
  if (eta > 0.0 && delta <= 2.0 * eta) return truncation_refusal(eta, delta, options.kind);
  const double rdp = rdp_epsilon(base, delta, eta);
  if (options.kind == AccountantKind::kRdp) return {rdp, AccountantKind::kRdp, ""};
  PldResult pld;
  try {
    pld = detail::pld_epsilon_with_charge(base, delta, eta, options.pld);
  } catch (const std::exception& e) {
    // Arguments were validated above: anything thrown here is a limit of the PLD (a grid that cannot
    // fit, a count beyond its range). The RDP bound is sound on its own.
    return {rdp, AccountantKind::kRdp,
            std::string("the PLD could not answer (") + e.what() + "); reporting the RDP bound"};
  }
  if (pld.value <= rdp) return {pld.value, AccountantKind::kPld, pld.note};
  std::string note = "the RDP bound is tighter here";
  if (!pld.note.empty()) note += " (PLD: " + pld.note + ")";
  return {rdp, AccountantKind::kRdp, note};
}

double compute_epsilon(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options) {
  return epsilon_answer(phases, delta, options).value;
}

AccountingAnswer delta_answer(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options) {
  validate_epsilon(epsilon);
  validate_kind(options.kind);
  options.pld.validate();
  const std::vector<GaussianPhase> base = mechanisms(phases);
  const double charge = truncation_charge(epsilon, truncation_probability(phases));
  const std::vector<double> curve = rdp_curve_for(
      base, [&](const std::vector<double>& c) { return rdp_to_delta(default_rdp_orders(), c, epsilon).order; });
  const double rdp = rdp_to_delta(default_rdp_orders(), curve, epsilon).value;
  const auto with_charge = [&](double d) { return std::min(1.0, d + charge); };
  if (options.kind == AccountantKind::kRdp) return {with_charge(rdp), AccountantKind::kRdp, ""};
  PldResult pld;
  try {
    pld = pld_delta(base, epsilon, options.pld);
  } catch (const std::exception& e) {
    return {with_charge(rdp), AccountantKind::kRdp,
            std::string("the PLD could not answer (") + e.what() + "); reporting the RDP bound"};
  }
  if (pld.value <= rdp) return {with_charge(pld.value), AccountantKind::kPld, pld.note};
  std::string note = "the RDP bound is tighter here";
  if (!pld.note.empty()) note += " (PLD: " + pld.note + ")";
  return {with_charge(rdp), AccountantKind::kRdp, note};
}

double compute_delta(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options) {
  return delta_answer(phases, epsilon, options).value;
}

double calibrate_noise_multiplier(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                  const AccountantOptions& options, std::int64_t dataset_size, std::int64_t capacity) {
  validate_epsilon(epsilon);
  validate_query_delta(delta);
  validate_kind(options.kind);
  options.pld.validate();
  const TrainingPhase shape{sampling_rate, 1.0, steps, dataset_size, capacity};
  validate_training_phase(shape);
  const double eta = truncation_probability(std::span<const TrainingPhase>(&shape, 1));
  DPSGD_CHECK_ARG(eta == 0.0 || delta > 2.0 * eta,
                  "truncation probability " << eta << " (capacity " << capacity << " of " << dataset_size
                                            << ") leaves no room in delta = " << delta << "; raise the capacity");
  const auto at = [&](double sigma, const AccountantOptions& o) {
    return epsilon_at(sampling_rate, sigma, steps, dataset_size, capacity, delta, o);
  };
  // Bracket with RDP (microseconds a query): an RDP-feasible sigma is feasible for every accountant.
  AccountantOptions rdp = options;
  rdp.kind = AccountantKind::kRdp;
  double high = 1.0;
  while (at(high, rdp) > epsilon) {
    high *= 2.0;
    DPSGD_CHECK_ARG(high <= kMaxNoiseMultiplier, "no noise multiplier up to 1e6 reaches epsilon = "
                                                     << epsilon << " at delta = " << delta << " in " << steps
                                                     << " steps of sampling rate " << sampling_rate);
  }
  while (high > 1e-6 && at(high / 2.0, rdp) <= epsilon) high /= 2.0;
  {
    double low = high / 2.0;
    const double tolerance = options.kind == AccountantKind::kRdp ? 1e-5 : 1e-2;
    while (high / low > 1.0 + tolerance) {
      const double mid = std::sqrt(low * high);
      (at(mid, rdp) <= epsilon ? high : low) = mid;
    }
  }
  if (options.kind == AccountantKind::kPld) {
    // The grid the PLD settles on for the RDP sigma serves every sigma of the search: each answer on
    // it is still an upper bound, one composition per query instead of three. The search tolerates
    // 5e-4 of grid error and aims below the target by twice the caller's tolerance, so that the
    // adaptive answer callers get lands under the target.
    AccountantOptions search = options;
    {
      PldOptions coarse = options.pld;
      coarse.relative_error = std::max(coarse.relative_error, 5e-4);
      const GaussianPhase at_high{sampling_rate, high, steps};
      search.pld.fixed_grid =
          detail::pld_epsilon_with_charge(std::span<const GaussianPhase>(&at_high, 1), delta, eta, coarse).grid;
    }
    const double aim = epsilon * (1.0 - 2.0 * options.pld.relative_error);
    // log epsilon is close to linear in log sigma: regula falsi on the logs, with the Illinois rule.
    const auto f = [&](double sigma) { return std::log(at(sigma, search)) - std::log(aim); };
    double f_high = f(high);
    for (int guard = 0; guard < 20 && f_high > 0.0; ++guard) {  // the fixed grid differs from RDP by a hair
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
    for (int it = 0; it < 60 && high / low - 1.0 > 1e-4; ++it) {
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
  }
  // The promise is about compute_epsilon as callers run it: verify, nudging sigma up a few times.
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (at(high, options) <= epsilon) return high;
    high *= 1.0 + 4.0 * options.pld.relative_error * (attempt + 1);
  }
  throw Error("dpsgd::calibrate_noise_multiplier: could not verify a noise multiplier for epsilon = " +
              describe("", epsilon) + describe(" at delta = ", delta) + "; the accountant's answers near it are " +
              "not consistent enough (try a larger PldOptions::relative_error)");
}

std::int64_t calibrate_steps(double sampling_rate, double noise_multiplier, double epsilon, double delta,
                             const AccountantOptions& options, std::int64_t max_steps, std::int64_t dataset_size,
                             std::int64_t capacity) {
  validate_epsilon(epsilon);
  validate_query_delta(delta);
  validate_kind(options.kind);
  options.pld.validate();
  DPSGD_CHECK_ARG(max_steps >= 1, "max_steps must be >= 1, got " << max_steps);
  validate_training_phase(TrainingPhase{sampling_rate, noise_multiplier, 1, dataset_size, capacity});
  const auto fits = [&](std::int64_t steps, const AccountantOptions& o) {
    const TrainingPhase phase{sampling_rate, noise_multiplier, steps, dataset_size, capacity};
    return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, o) <= epsilon;
  };
  // The largest count in [good, bad) that fits, given that good fits and bad does not (or is past max_steps).
  const auto largest = [&](std::int64_t good, const AccountantOptions& o) {
    std::int64_t bad = good + 1;
    while (bad <= max_steps && fits(bad, o)) {
      good = bad;
      bad = bad > max_steps / 2 ? max_steps + 1 : bad * 2;
    }
    while (bad - good > 1) {
      const std::int64_t mid = good + (bad - good) / 2;
      (fits(mid, o) ? good : bad) = mid;
    }
    return good;
  };
  if (!fits(1, options)) return 0;
  // RDP (microseconds a query) brackets from below: an RDP-feasible count fits every accountant.
  AccountantOptions rdp = options;
  rdp.kind = AccountantKind::kRdp;
  const std::int64_t rdp_steps = fits(1, rdp) ? largest(1, rdp) : 1;
  if (options.kind == AccountantKind::kRdp) return rdp_steps;
  // The PLD search on the grid found at the RDP count, then a check with the caller's options.
  AccountantOptions search = options;
  {
    const GaussianPhase at_rdp{sampling_rate, noise_multiplier, rdp_steps};
    search.pld.fixed_grid = pld_epsilon(std::span<const GaussianPhase>(&at_rdp, 1), delta, options.pld).grid;
  }
  std::int64_t steps = largest(rdp_steps, search);
  for (int guard = 0; guard < 64 && steps > rdp_steps && !fits(steps, options); ++guard)
    steps -= std::max<std::int64_t>(1, steps / 10000);
  for (int guard = 0; guard < 16 && steps < max_steps && fits(steps + 1, options); ++guard) ++steps;
  return std::max(steps, rdp_steps);
}

}  // namespace dpsgd

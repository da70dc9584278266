// Accountant queries over training phases: PLD and RDP side by side, truncation, and verified calibration.
#include "dpsgd/accounting/accountant.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numbers>
#include <optional>
#include <sstream>
#include <vector>

#include "dpsgd/accounting/detail/pld_queries.hpp"
#include "dpsgd/accounting/detail/rdp_focused.hpp"
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
// Largest and smallest noise multipliers calibration searches.
constexpr double kMaxNoiseMultiplier = 1e6;
constexpr double kMinNoiseMultiplier = 1e-6;
// Calibration's first search runs on the PLD's first grid times this (about a sixteenth of the cost).
constexpr double kCoarsening = 4.0;

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

// The smallest x (within x_tolerance, or with -f_tolerance <= f(x) <= 0) with f(x) <= 0, f decreasing,
// searched from x0 (f0 = f(x0)):
// secant steps (the first in slope_guess, at most max_step in x) until the sign changes, then regula
// falsi with the Illinois rule. Returns an x where f <= 0 was seen (x0 if f0 <= 0 and nothing smaller
// was found), or nothing if none was seen within max_evals. f may return +inf (infeasible, unknown by
// how much): the search then bisects.
struct SearchTrace {
  double slope = 0.0;  // the last secant slope seen
};

template <typename F>
std::optional<double> smallest_feasible(F&& f, double x0, double f0, double slope_guess, double x_tolerance,
                                        double f_tolerance, int max_evals, SearchTrace* trace = nullptr) {
  constexpr double kMaxStep = 1.5;
  std::optional<double> feasible, infeasible;
  double f_feasible = 0.0, f_infeasible = 0.0, slope = slope_guess;
  double x_last = x0, f_last = f0;
  (f0 <= 0.0 ? feasible : infeasible) = x0;
  (f0 <= 0.0 ? f_feasible : f_infeasible) = f0;
  int stale_side = 0;
  for (int eval = 0; eval < max_evals; ++eval) {
    if (feasible && f_feasible >= -f_tolerance) break;  // close enough below the boundary
    double x;
    if (feasible && infeasible) {
      if (*feasible - *infeasible <= x_tolerance) break;
      const bool secant = std::isfinite(f_infeasible) && f_infeasible != f_feasible;
      x = secant ? *feasible - f_feasible * (*feasible - *infeasible) / (f_feasible - f_infeasible)
                 : 0.5 * (*feasible + *infeasible);
      const double margin = 0.01 * (*feasible - *infeasible);
      x = std::clamp(x, *infeasible + margin, *feasible - margin);
    } else {
      // Aim half the tolerance inside, so that an accurate step lands feasible.
      const double step =
          std::isfinite(f_last) ? -(f_last + 0.5 * f_tolerance) / slope : (feasible ? -kMaxStep : kMaxStep);
      x = x_last + std::clamp(step, -kMaxStep, kMaxStep);
      if (std::fabs(x - x_last) < 0.5 * x_tolerance) x = x_last + (feasible ? -x_tolerance : x_tolerance);
    }
    const double fx = f(x);
    if (std::isfinite(fx) && std::isfinite(f_last) && x != x_last) {
      const double s = (fx - f_last) / (x - x_last);
      if (s < 0.0 && std::isfinite(s)) slope = s;
    }
    x_last = x;
    f_last = fx;
    if (fx <= 0.0) {
      if (stale_side == -1 && infeasible && std::isfinite(f_infeasible)) f_infeasible /= 2.0;
      stale_side = -1;
      feasible = x;
      f_feasible = fx;
    } else {
      if (stale_side == 1 && feasible) f_feasible /= 2.0;
      stale_side = 1;
      infeasible = x;
      f_infeasible = fx;
    }
  }
  if (trace != nullptr) trace->slope = slope;
  return feasible;
}

// The largest t in [good, max] with fits(t), given fits(good): doubling, then bisection.
template <typename Fits>
std::int64_t largest_fitting(std::int64_t good, std::int64_t max, Fits&& fits) {
  std::int64_t bad = good + 1;
  while (bad <= max && fits(bad)) {
    good = bad;
    bad = bad > max / 2 ? max + 1 : bad * 2;
  }
  while (bad - good > 1) {
    const std::int64_t mid = good + (bad - good) / 2;
    (fits(mid) ? good : bad) = mid;
  }
  return good;
}

// The PLD answer for one phase: the full refinement (what compute_epsilon takes the minimum of with
// RDP) or, with first_grid, its first grid only (never below the full answer); nothing where the PLD
// cannot answer.
std::optional<PldResult> pld_answer(const TrainingPhase& phase, double delta, const PldOptions& options,
                                    bool first_grid, double coarsening = 1.0) {
  const double eta = truncation_probability(std::span<const TrainingPhase>(&phase, 1));
  if (eta > 0.0 && delta <= 2.0 * eta) return std::nullopt;
  const GaussianPhase mechanism{phase.sampling_rate, phase.noise_multiplier, phase.steps};
  const std::span<const GaussianPhase> mechanisms(&mechanism, 1);
  try {
    PldResult result = first_grid ? detail::pld_epsilon_first_grid(mechanisms, delta, eta, options, coarsening)
                                  : detail::pld_epsilon_with_charge(mechanisms, delta, eta, options);
    if (std::isfinite(result.value) && result.value > 0.0) return result;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// The smallest RDP-feasible noise multiplier (to 1e-5 relative): its RDP epsilon meets the target, so
// every accountant's does (compute_epsilon never reports more than the RDP bound).
double rdp_noise_multiplier(const TrainingPhase& shape, double epsilon, double delta,
                            const AccountantOptions& options) {
  AccountantOptions rdp = options;
  rdp.kind = AccountantKind::kRdp;
  const auto fits = [&](double sigma) {
    return epsilon_at(shape.sampling_rate, sigma, shape.steps, shape.dataset_size, shape.capacity, delta, rdp) <=
           epsilon;
  };
  double high = 1.0;
  while (!fits(high)) {
    high *= 2.0;
    DPSGD_CHECK_ARG(high <= kMaxNoiseMultiplier, "no noise multiplier up to 1e6 reaches epsilon = "
                                                     << epsilon << " at delta = " << delta << " in " << shape.steps
                                                     << " steps of sampling rate " << shape.sampling_rate);
  }
  while (high > kMinNoiseMultiplier && fits(high / 2.0)) high /= 2.0;
  double low = high / 2.0;
  while (high / low > 1.0 + 1e-5) {
    const double mid = std::sqrt(low * high);
    (fits(mid) ? high : low) = mid;
  }
  return high;
}

// The largest count t <= max_count (to within max(1, t / 1e5)) with f(t) <= 0, for f increasing in t,
// given that `good` passes: secant steps in log t from t0 (f0 = f(t0)), rounded to whole counts strictly
// inside the bracket, regula falsi with the Illinois rule once both sides are known.
template <typename F>
std::int64_t largest_feasible_count(F&& f, std::int64_t good, std::int64_t t0, double f0, double slope,
                                    std::int64_t max_count, double f_tolerance, int max_evals) {
  std::int64_t bad = max_count + 1;
  double f_good = -kInf, f_bad = kInf;
  const auto record = [&](std::int64_t t, double ft, int& stale_side) {
    if (ft <= 0.0) {
      if (t > good) {
        good = t;
        f_good = ft;
      }
      if (stale_side == -1 && std::isfinite(f_bad)) f_bad /= 2.0;
      stale_side = -1;
    } else {
      if (t < bad) {
        bad = t;
        f_bad = ft;
      }
      if (stale_side == 1 && std::isfinite(f_good)) f_good /= 2.0;
      stale_side = 1;
    }
  };
  int stale_side = 0;
  record(t0, f0, stale_side);
  double x_last = std::log(static_cast<double>(t0)), f_last = f0;
  for (int eval = 0; eval < max_evals; ++eval) {
    if (bad - good <= std::max<std::int64_t>(1, good / 100000) || f_good >= -f_tolerance) break;
    double x;
    if (std::isfinite(f_good) && std::isfinite(f_bad)) {
      const double a = std::log(static_cast<double>(good)), b = std::log(static_cast<double>(bad));
      x = a - f_good * (b - a) / (f_bad - f_good);
    } else {
      const double step = std::isfinite(f_last) ? -(f_last + 0.5 * f_tolerance) / slope : 1.5;
      x = x_last + std::clamp(step, -1.5, 1.5);
    }
    const double t_real = std::exp(std::min(x, 62.0 * std::numbers::ln2));
    const auto t = static_cast<std::int64_t>(
        std::clamp(std::round(t_real), static_cast<double>(good + 1), static_cast<double>(bad - 1)));
    const double ft = f(t);
    const double xt = std::log(static_cast<double>(t));
    if (std::isfinite(ft) && std::isfinite(f_last) && xt != x_last) {
      const double s = (ft - f_last) / (xt - x_last);
      if (s > 0.0 && std::isfinite(s)) slope = s;
    }
    x_last = xt;
    f_last = ft;
    record(t, ft, stale_side);
  }
  return good;
}

// The PLD side of calibration works on log sigma or log T. It searches first on a grid kCoarsening
// times coarser than the PLD's first grid (about a sixteenth of the cost) to near the boundary, then
// finely from there with the slope learnt: for sigma on the first grid itself, whose answer bounds
// what compute_epsilon reports (so a sigma it accepts needs no further check); for whole step counts
// with compute_epsilon's own answer, so the count is exact where single steps matter.
struct CoarseStart {
  double x;
  double slope;
};

// The coarse stage for f decreasing in x, from the RDP solution x0.
template <typename F>
CoarseStart coarse_start(F&& coarse, double x0, double f0, double slope_guess, double x_tolerance) {
  SearchTrace trace{slope_guess};
  const auto x = smallest_feasible(coarse, x0, f0, slope_guess, x_tolerance, 1e-4, 24, &trace);
  return {x ? *x : x0, trace.slope};
}

double pld_noise_multiplier(const TrainingPhase& shape, double epsilon, double delta, const AccountantOptions& options,
                            double rdp_sigma) {
  const double log_target = std::log(epsilon);
  const auto f = [&](double coarsening) {
    return [&, coarsening](double log_sigma) {
      TrainingPhase phase = shape;
      phase.noise_multiplier = std::exp(log_sigma);
      const std::optional<PldResult> r = pld_answer(phase, delta, options.pld, true, coarsening);
      return r ? std::log(r->value) - log_target : kInf;
    };
  };
  const auto fine = f(1.0);
  const auto coarse = f(kCoarsening);
  const double x_rdp = std::log(rdp_sigma);
  // Where even the first grid misses the target at the RDP sigma, the PLD is the looser bound here
  // (smaller sigmas only raise its answer): RDP's sigma stands.
  const double coarse_rdp = coarse(x_rdp);
  CoarseStart start{x_rdp, -1.5};
  double f_start;
  if (coarse_rdp > 0.0) {
    f_start = fine(x_rdp);
    if (f_start > 0.0) return rdp_sigma;
  } else {
    start = coarse_start(coarse, x_rdp, coarse_rdp, -1.5, 1e-5);
    f_start = fine(start.x);
    // Normally the first grid's answer lies below the coarse one's, which meets the target here. Where
    // it does not, the steps' rounding (which grows as the grid shrinks, over very long runs) dominates
    // the PLD and RDP's sigma stands.
    if (f_start > 0.0) return rdp_sigma;
  }
  const std::optional<double> x = smallest_feasible(fine, start.x, f_start, start.slope, 1e-5, 1e-4, 8);
  return x ? std::min(rdp_sigma, std::exp(*x)) : rdp_sigma;
}

std::int64_t pld_steps(const TrainingPhase& shape, double epsilon, double delta, const AccountantOptions& options,
                       std::int64_t rdp_steps, std::int64_t max_steps) {
  const double log_target = std::log(epsilon);
  const auto at = [&](std::int64_t steps, double coarsening, bool first_grid) {
    TrainingPhase phase = shape;
    phase.steps = steps;
    const std::optional<PldResult> r = pld_answer(phase, delta, options.pld, first_grid, coarsening);
    return r ? std::log(r->value) - log_target : kInf;
  };
  const auto steps_at = [&](double log_steps) {
    return static_cast<std::int64_t>(std::clamp(std::round(std::exp(std::min(log_steps, 62.0 * std::numbers::ln2))),
                                                1.0, static_cast<double>(max_steps)));
  };
  // The coarse stage on y = -log T, where the answer decreases.
  const auto coarse = [&](double y) { return at(steps_at(-y), kCoarsening, true); };
  const double y_rdp = -std::log(static_cast<double>(rdp_steps));
  const CoarseStart start = coarse_start(coarse, y_rdp, coarse(y_rdp), -0.6, 2e-3);
  const std::int64_t t0 = std::max(steps_at(-start.x), rdp_steps);
  // A count is exact where single steps matter: the fine stage asks exactly what compute_epsilon asks.
  const auto full = [&](std::int64_t t) { return at(t, 1.0, false); };
  return largest_feasible_count(full, rdp_steps, t0, full(t0), -start.slope, max_steps, 0.0, 10);
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
  const std::string field = "phases[" + std::to_string(index) + "].";
  validate_sampling_rate(phase.sampling_rate, field + "sampling_rate");
  validate_accounted_noise_multiplier(phase.noise_multiplier, field + "noise_multiplier");
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

NoiseCalibration calibrate_noise(double sampling_rate, std::int64_t steps, double epsilon, double delta,
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
  const double rdp_sigma = rdp_noise_multiplier(shape, epsilon, delta, options);
  const double sigma = options.kind == AccountantKind::kRdp
                           ? rdp_sigma
                           : pld_noise_multiplier(shape, epsilon, delta, options, rdp_sigma);
  // The searches accept only sigmas whose answers bound epsilon_answer's; check the promise itself.
  TrainingPhase phase = shape;
  phase.noise_multiplier = sigma;
  const AccountingAnswer answer = epsilon_answer(std::span<const TrainingPhase>(&phase, 1), delta, options);
  if (!(answer.value <= epsilon)) {
    throw Error("dpsgd::calibrate_noise: noise multiplier " + describe("", sigma) + " gives epsilon " +
                describe("", answer.value) + " above the target " + describe("", epsilon) +
                describe(" at delta = ", delta) + "; please report this");
  }
  return {sigma, answer};
}

double calibrate_noise_multiplier(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                  const AccountantOptions& options, std::int64_t dataset_size, std::int64_t capacity) {
  return calibrate_noise(sampling_rate, steps, epsilon, delta, options, dataset_size, capacity).noise_multiplier;
}

std::int64_t calibrate_steps(double sampling_rate, double noise_multiplier, double epsilon, double delta,
                             const AccountantOptions& options, std::int64_t max_steps, std::int64_t dataset_size,
                             std::int64_t capacity) {
  validate_epsilon(epsilon);
  validate_query_delta(delta);
  validate_kind(options.kind);
  options.pld.validate();
  DPSGD_CHECK_ARG(max_steps >= 1, "max_steps must be >= 1, got " << max_steps);
  const TrainingPhase shape{sampling_rate, noise_multiplier, 1, dataset_size, capacity};
  validate_training_phase(shape);
  const auto fits = [&](std::int64_t steps, const AccountantOptions& o) {
    return epsilon_at(sampling_rate, noise_multiplier, steps, dataset_size, capacity, delta, o) <= epsilon;
  };
  if (!fits(1, options)) return 0;
  // RDP (microseconds a query) brackets from below: an RDP-feasible count fits every accountant.
  AccountantOptions rdp = options;
  rdp.kind = AccountantKind::kRdp;
  const std::int64_t rdp_steps =
      fits(1, rdp) ? largest_fitting(1, max_steps, [&](std::int64_t t) { return fits(t, rdp); }) : 1;
  if (options.kind == AccountantKind::kRdp || rdp_steps == max_steps) return rdp_steps;
  return pld_steps(shape, epsilon, delta, options, rdp_steps, max_steps);
}

}  // namespace dpsgd

// Verified calibration: RDP brackets the answer, the PLD refines it, epsilon_answer checks it.
#include "dpsgd/accounting/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numbers>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "dpsgd/accounting/detail/pld_queries.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Largest and smallest noise multipliers calibration searches.
constexpr double kMaxNoiseMultiplier = 1e6;
constexpr double kMinNoiseMultiplier = 1e-6;
// Calibration's first search runs on the PLD's first grid times this (about a sixteenth of the cost).
constexpr double kCoarsening = 4.0;

std::string describe(const char* what, double value) {
  std::ostringstream out;
  out.precision(4);
  out << what << value;
  return out.str();
}

// The epsilon reported for one sigma during calibration: the accountant's answer with `options`.
double epsilon_at(TrainingPhase phase, std::int64_t steps, double delta, const AccountantOptions& options) {
  phase.steps = steps;
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
  const std::span<const GaussianPhase> mechanisms(&phase.mechanism(), 1);
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
    TrainingPhase phase = shape;
    phase.noise_multiplier = sigma;
    return epsilon_at(phase, shape.steps, delta, rdp) <= epsilon;
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

NoiseCalibration calibrate_noise(const NoiseCalibrationQuery& query) {
  validate_epsilon(query.epsilon);
  validate_accounted_delta(query.delta);
  query.options.validate();
  TrainingPhase shape{query.sampling_rate, 1.0, query.steps, query.dataset_size, query.capacity};
  validate_training_phase(shape);
  const double eta = truncation_probability(std::span<const TrainingPhase>(&shape, 1));
  DPSGD_CHECK_ARG(eta == 0.0 || query.delta > 2.0 * eta,
                  "truncation probability " << eta << " (capacity " << query.capacity << " of " << query.dataset_size
                                            << ") leaves no room in delta = " << query.delta << "; raise the capacity");
  const double rdp_sigma = rdp_noise_multiplier(shape, query.epsilon, query.delta, query.options);
  const double sigma = query.options.kind == AccountantKind::kRdp
                           ? rdp_sigma
                           : pld_noise_multiplier(shape, query.epsilon, query.delta, query.options, rdp_sigma);
  // The searches accept only sigmas whose answers bound epsilon_answer's; check the promise itself.
  shape.noise_multiplier = sigma;
  const AccountingAnswer answer = epsilon_answer(std::span<const TrainingPhase>(&shape, 1), query.delta, query.options);
  if (!(answer.value <= query.epsilon)) {
    throw Error("dpsgd::calibrate_noise: noise multiplier " + describe("", sigma) + " gives epsilon " +
                describe("", answer.value) + " above the target " + describe("", query.epsilon) +
                describe(" at delta = ", query.delta) + "; please report this");
  }
  return {sigma, answer};
}

NoiseCalibration calibrate_noise_after(std::span<const TrainingPhase> spent, const NoiseCalibrationQuery& query) {
  if (spent.empty()) return calibrate_noise(query);
  for (std::size_t k = 0; k < spent.size(); ++k) validate_training_phase(spent[k], k);
  const AccountingAnswer spent_alone = epsilon_answer(spent, query.delta, query.options);
  DPSGD_CHECK_ARG(spent_alone.value < query.epsilon, "the spent mechanisms alone have epsilon "
                                                         << spent_alone.value << " at delta = " << query.delta
                                                         << ", leaving no room under epsilon = " << query.epsilon);
  // The run alone is a lower bound: composing more mechanisms never lowers epsilon.
  double low = calibrate_noise(query).noise_multiplier;
  std::vector<TrainingPhase> all(spent.begin(), spent.end());
  all.push_back(TrainingPhase{{query.sampling_rate, low, query.steps}, query.dataset_size, query.capacity});
  const auto answer_at = [&](double sigma) {
    all.back().noise_multiplier = sigma;
    return epsilon_answer(all, query.delta, query.options);
  };
  AccountingAnswer answer = answer_at(low);
  if (answer.value <= query.epsilon) return {low, answer};
  double high = low;
  do {
    low = high;
    high *= 1.25;
    DPSGD_CHECK_ARG(high <= kMaxNoiseMultiplier,
                    "no noise multiplier up to 1e6 reaches epsilon = " << query.epsilon << " at delta = " << query.delta
                                                                       << " after the spent mechanisms");
    answer = answer_at(high);
  } while (!(answer.value <= query.epsilon));
  while (high / low > 1.0 + 1e-4) {
    const double mid = std::sqrt(low * high);
    AccountingAnswer at_mid = answer_at(mid);
    if (at_mid.value <= query.epsilon) {
      high = mid;
      answer = std::move(at_mid);
    } else {
      low = mid;
    }
  }
  return {high, answer};
}

std::int64_t calibrate_steps(const StepCalibrationQuery& query) {
  validate_epsilon(query.epsilon);
  validate_accounted_delta(query.delta);
  query.options.validate();
  DPSGD_CHECK_ARG(query.max_steps >= 1, "max_steps must be >= 1, got " << query.max_steps);
  const TrainingPhase shape{query.sampling_rate, query.noise_multiplier, 1, query.dataset_size, query.capacity};
  validate_training_phase(shape);
  const auto fits = [&](std::int64_t steps, const AccountantOptions& o) {
    return epsilon_at(shape, steps, query.delta, o) <= query.epsilon;
  };
  if (!fits(1, query.options)) return 0;
  // RDP (microseconds a query) brackets from below: an RDP-feasible count fits every accountant.
  AccountantOptions rdp = query.options;
  rdp.kind = AccountantKind::kRdp;
  const std::int64_t rdp_steps =
      fits(1, rdp) ? largest_fitting(1, query.max_steps, [&](std::int64_t t) { return fits(t, rdp); }) : 1;
  if (query.options.kind == AccountantKind::kRdp || rdp_steps == query.max_steps) return rdp_steps;
  return pld_steps(shape, query.epsilon, query.delta, query.options, rdp_steps, query.max_steps);
}

NoiseCalibration calibrate_noise(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                 const AccountantOptions& options, std::int64_t dataset_size, std::int64_t capacity) {
  return calibrate_noise(NoiseCalibrationQuery{sampling_rate, steps, epsilon, delta, dataset_size, capacity, options});
}

double calibrate_noise_multiplier(double sampling_rate, std::int64_t steps, double epsilon, double delta,
                                  const AccountantOptions& options, std::int64_t dataset_size, std::int64_t capacity) {
  return calibrate_noise(sampling_rate, steps, epsilon, delta, options, dataset_size, capacity).noise_multiplier;
}

std::int64_t calibrate_steps(double sampling_rate, double noise_multiplier, double epsilon, double delta,
                             const AccountantOptions& options, std::int64_t max_steps, std::int64_t dataset_size,
                             std::int64_t capacity) {
  return calibrate_steps(StepCalibrationQuery{sampling_rate, noise_multiplier, epsilon, delta, max_steps, dataset_size,
                                              capacity, options});
}

}  // namespace dpsgd

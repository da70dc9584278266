// PLD queries: epsilon and delta of composed Poisson-subsampled Gaussian phases on an adaptive grid.
#include "dpsgd/accounting/pld.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <vector>

#include "dpsgd/accounting/detail/phase_reduction.hpp"
#include "dpsgd/accounting/detail/pld_internals.hpp"
#include "dpsgd/accounting/detail/pld_queries.hpp"
#include "dpsgd/accounting/detail/rdp_focused.hpp"
#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Distinct (q, sigma) the PLD composes one by one; more are replaced by dominating phases.
constexpr std::size_t kMaxPldPhases = 16;
// Mass of the tilted composition left outside the FFT window on each side.
constexpr double kWindowTail = 1e-15;
// Largest exponential tilt: the rounding of the tilted inputs grows with it.
constexpr double kMaxTilt = 1e4;
// Work one query may spend, counted as grid points transformed (one forward FFT and one power per
// phase, one inverse per composition). About 1.5 s on the project's 2-core machine; beyond it the
// refinement stops and reports its error estimate.
constexpr double kWorkBudget = 6.0e7;
// Most points one step's PMF may have; the grid is coarsened to respect it.
constexpr double kMaxStepPoints = double(1 << 21);
// Points of the copy of the steps that tilt decisions are taken on.
constexpr double kTiltPoints = 4096.0;
// Coarsest grid tried: a run that needs a coarser one (an astronomically long composition) is left to
// RDP, whose answer such a grid could not beat.
constexpr double kMaxGrid = 8.0;
// Share of the expected delta that a delta query's step tails may send to infinity.
constexpr double kDeltaTailShare = 1e-6;
// Smallest delta a query may ask about (the smallest normal double is 2.2e-308; below 1e-300 the
// bounds on rounding in the construction are no longer negligible).
constexpr double kMinDelta = 1e-300;

void validate_phase(const GaussianPhase& phase, std::size_t k) {
  DPSGD_CHECK_ARG(std::isfinite(phase.sampling_rate) && phase.sampling_rate >= 0.0 && phase.sampling_rate <= 1.0,
                  "phases[" << k << "].sampling_rate must be in [0, 1], got " << phase.sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(phase.noise_multiplier) && phase.noise_multiplier > 0.0,
                  "phases[" << k << "].noise_multiplier must be finite and > 0, got " << phase.noise_multiplier);
  DPSGD_CHECK_ARG(phase.steps >= 0, "phases[" << k << "].steps must be >= 0, got " << phase.steps);
}

detail::ReducedPhases active_phases(std::span<const GaussianPhase> phases) {
  DPSGD_CHECK_ARG(!phases.empty(), "phases must hold at least one phase");
  for (std::size_t k = 0; k < phases.size(); ++k) validate_phase(phases[k], k);
  return detail::reduce_phases(phases, kMaxPldPhases);
}

double total_steps(const std::vector<GaussianPhase>& phases) {
  double total = 0.0;
  for (const auto& phase : phases) total += static_cast<double>(phase.steps);
  return total;
}

// The smallest epsilon >= 0 with delta(epsilon) + (1 + e^epsilon) charge <= delta on a composition (or
// with_error = false: on its nominal masses); +inf if none. The charge grows with epsilon and the
// PLD's delta falls, so eps <- epsilon_for_delta(delta - (1 + e^eps) charge) climbs from 0 to the
// smallest solution.
double epsilon_with_charge(const detail::TiltedComposition& composition, double delta, double charge, bool with_error) {
  if (charge == 0.0) return composition.epsilon_for_delta(delta, with_error);
  const auto charge_at = [&](double eps) { return charge + std::exp(eps + std::log(charge)); };
  double eps = 0.0;
  for (int round = 0; round < 60; ++round) {
    const double remaining = delta - charge_at(eps);
    if (!(remaining > 0.0)) return kInf;
    const double next = composition.epsilon_for_delta(remaining, with_error);
    if (!std::isfinite(next)) return kInf;
    if (next <= eps) return eps;  // delta(eps) <= delta(next) <= remaining
    eps = next + 1e-12 * (1.0 + next);
    if (composition.delta_for_epsilon(eps, with_error) + charge_at(eps) <= delta) return eps;
  }
  return kInf;
}

struct Query {
  enum class Kind { kEpsilon, kDelta } kind;
  double target;      // delta for an epsilon query, epsilon for a delta query
  double charge = 0;  // truncation charge eta of epsilon queries

  double operator()(const detail::TiltedComposition& composition, bool with_error) const {
    return kind == Kind::kEpsilon ? epsilon_with_charge(composition, target, charge, with_error)
                                  : composition.delta_for_epsilon(target, with_error);
  }
};

// The pessimistic answer on one grid, max over the two directions.
struct GridAnswer {
  double value = 0.0;
  double nominal = 0.0;  // without the composition's error bounds: value - nominal is what they cost
  double work = 0.0;
  double window_points = 0.0;  // the widest window
  bool consistent = true;
  std::string problem;
};

// One query: the phases' step ranges and the tilt targets carry over from grid to grid.
class PldSolver {
 public:
  // expected_delta: for delta queries, an upper bound on the answer (sets the tail budget).
  PldSolver(std::vector<GaussianPhase> phases, Query query, const PldOptions& options, double expected_delta)
      : phases_(std::move(phases)), query_(query), options_(options), expected_delta_(expected_delta) {
    const double steps = total_steps(phases_);
    // Tails cut per step: at most 1e-4 of the target delta over the whole run; for delta queries
    // 1e-6 of the expected answer (an upper bound from RDP). Cutting deeper would only widen the
    // grid: the tilt amplifies rare large losses, and the window with them.
    const double budget =
        query_.kind == Query::Kind::kEpsilon ? 1e-4 * query_.target : kDeltaTailShare * expected_delta;
    const double tail = std::clamp(budget / steps, 1e-300, 1e-10);
    // Untilted mass the composition's window may cut off at the top (it becomes infinity mass).
    window_budget_ = std::clamp(0.1 * budget, 1e-300, 1e-6);
    for (int d = 0; d < 2; ++d) {
      for (const auto& phase : phases_) {
        ranges_[d].push_back(detail::subsampled_gaussian_range(phase.sampling_rate, phase.noise_multiplier,
                                                               static_cast<PldDirection>(d), tail, tail));
      }
    }
  }

  // The coarsest grid at which every step fits kMaxStepPoints points.
  double step_grid_floor() const { return widest_range() / kMaxStepPoints; }

  double widest_range() const {
    double widest = 0.0;
    for (const auto& ranges : ranges_) {
      for (const auto& range : ranges) widest = std::max(widest, static_cast<double>(range.highest - range.lowest));
    }
    return widest;
  }

  // Both directions on one grid (in parallel). Throws detail::GridTooFine when a composition needs
  // more than max_points.
  GridAnswer at(double grid) {
    // A step alone wider than the composition's budget cannot fit: refuse before discretising it.
    if (widest_range() / grid > static_cast<double>(options_.max_points)) {
      throw detail::GridTooFine("dpsgd: one step needs more than max_points points at this grid");
    }
    GridAnswer answer;
    std::array<GridAnswer, 2> answers;
    std::array<std::exception_ptr, 2> errors;
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int d = 0; d < 2; ++d) {
      try {
        answers[d] = direction_at(grid, d);
      } catch (...) {
        errors[d] = std::current_exception();
      }
    }
    for (const auto& error : errors) {
      if (error) std::rethrow_exception(error);
    }
    for (const GridAnswer& a : answers) {
      answer.value = std::max(answer.value, a.value);
      answer.nominal = std::max(answer.nominal, a.nominal);
      answer.work += a.work;
      answer.window_points = std::max(answer.window_points, a.window_points);
      answer.consistent = answer.consistent && a.consistent;
      if (!a.problem.empty()) answer.problem = a.problem;
    }
    return answer;
  }

 private:
  GridAnswer direction_at(double grid, int d) {
    const auto direction = static_cast<PldDirection>(d);
    std::vector<PrivacyLossPmf> pmfs;
    std::vector<std::int64_t> counts;
    for (std::size_t j = 0; j < phases_.size(); ++j) {
      pmfs.push_back(detail::discretise_subsampled_gaussian(phases_[j].sampling_rate, phases_[j].noise_multiplier, grid,
                                                            direction, ranges_[d][j]));
      counts.push_back(phases_[j].steps);
    }
    const detail::PldComposer composer(std::move(pmfs), std::move(counts));
    // The tilt depends on the distribution, hardly on the grid: chosen once, kept after.
    if (!tilt_[d]) tilt_[d] = choose_tilt(grid, d);
    GridAnswer answer = compose_and_ask(composer, tilt_[d]->chosen);
    // The error bounds are tight where the tilt centres the composition on the answer. If they cost
    // more than a quarter of the target accuracy, centre it on the answer found and ask again (and keep
    // that tilt); both answers are upper bounds.
    if (std::isfinite(answer.nominal) && answer.nominal > 0.0 &&
        answer.value > answer.nominal * (1.0 + 0.25 * options_.relative_error)) {
      const double retilt = query_.kind == Query::Kind::kEpsilon
                                ? tilt_composer(grid, d).saddlepoint_tilt(answer.nominal, kMaxTilt)
                                : tilt_[d]->saddle;
      if (retilt != tilt_[d]->chosen) {
        GridAnswer second = compose_and_ask(composer, retilt);
        second.work += answer.work;
        second.window_points = std::max(second.window_points, answer.window_points);
        if (second.value <= answer.value) {
          answer = second;
          tilt_[d]->chosen = retilt;
        }
      }
    }
    return answer;
  }

  struct Tilt {
    double saddle;  // centres the tilted composition on the (expected) answer
    double chosen;  // what the compositions use (economical_tilt)
  };

  // The steps on a grid of at most kTiltPoints points, for the tilt decisions: they read moments and
  // Chernoff bounds, which hardly depend on the grid, and on the compositions' grid each costs a pass
  // over every point. (Any tilt gives an upper bound; a good one only makes it tight.)
  const detail::PldComposer& tilt_composer(double grid, int d) {
    if (!tilt_composers_[d]) {
      const double coarse = std::max(grid, widest_range() / kTiltPoints);
      std::vector<PrivacyLossPmf> pmfs;
      std::vector<std::int64_t> counts;
      for (std::size_t j = 0; j < phases_.size(); ++j) {
        pmfs.push_back(detail::discretise_subsampled_gaussian(phases_[j].sampling_rate, phases_[j].noise_multiplier,
                                                              coarse, static_cast<PldDirection>(d), ranges_[d][j]));
        counts.push_back(phases_[j].steps);
      }
      tilt_composers_[d].emplace(std::move(pmfs), std::move(counts));
    }
    return *tilt_composers_[d];
  }

  Tilt choose_tilt(double grid, int d) {
    const detail::PldComposer& composer = tilt_composer(grid, d);
    double saddle, target_loss, target_delta;
    if (query_.kind == Query::Kind::kDelta) {
      target_loss = query_.target;
      saddle = composer.saddlepoint_tilt(target_loss, kMaxTilt);
      target_delta = expected_delta_;
    } else {
      saddle = composer.saddlepoint_tilt_for_delta(query_.target, kMaxTilt);
      target_loss = composer.tilted_mean(saddle);
      target_delta = query_.target;
    }
    // The cost of the error bounds allowed, relative to delta: for epsilon queries, a relative change r
    // of delta moves epsilon by about r / (tilt * epsilon) relative (d log delta / d eps ~ -tilt).
    const double gap_limit = 0.25 * options_.relative_error *
                             (query_.kind == Query::Kind::kEpsilon ? std::max(1.0, saddle * target_loss) : 1.0);
    return {saddle,
            composer.economical_tilt(saddle, target_loss, target_delta, kWindowTail, window_budget_, gap_limit, grid)};
  }

  GridAnswer compose_and_ask(const detail::PldComposer& composer, double tilt) const {
    const detail::TiltedComposition composition =
        composer.compose(tilt, kWindowTail, window_budget_, options_.max_points);
    GridAnswer answer;
    const double n = static_cast<double>(composition.fft_points);
    answer.work = n * static_cast<double>(phases_.size() + 1);
    answer.window_points = composition.window_points;
    answer.value = query_(composition, true);
    answer.nominal = query_(composition, false);
    // The tilted coefficients sum to 1 in exact arithmetic (aliased tails only add); far from it,
    // something in the composition is wrong and the answer is not trusted to be tight.
    const double total_error = 1e-6 + n * composition.coefficient_error;
    if (!(std::fabs(composition.tilted_total - 1.0) <= total_error) || std::isnan(answer.value)) {
      answer.consistent = false;
      std::ostringstream problem;
      problem << "composition check failed (tilted mass " << composition.tilted_total << ")";
      answer.problem = problem.str();
      if (std::isnan(answer.value)) answer.value = kInf;
    }
    return answer;
  }

  std::vector<GaussianPhase> phases_;
  Query query_;
  PldOptions options_;
  std::array<std::vector<detail::StepRange>, 2> ranges_;
  std::array<std::optional<Tilt>, 2> tilt_;
  std::array<std::optional<detail::PldComposer>, 2> tilt_composers_;
  double expected_delta_;
  double window_budget_ = 1e-30;
};

// Grid to start from: an eighth of the standard deviation of one step's privacy loss
// (q sqrt(e^(1/sigma^2) - 1) for small q, 1/sigma at q = 1), at most 0.05 (coarser grids are not yet in
// the second-order regime the refinement's error estimate assumes) and at most a fiftieth of the
// expected answer, but coarse enough that every step fits kMaxStepPoints points.
double starting_grid(const std::vector<GaussianPhase>& phases, double expected, double floor) {
  double step_sd = kInf;
  for (const auto& phase : phases) {
    const double s = phase.noise_multiplier;
    const double spread = phase.sampling_rate * std::sqrt(std::expm1(std::min(1.0 / (s * s), 700.0)));
    step_sd = std::min(step_sd, std::min(1.0 / s, spread));
  }
  double grid = std::min(step_sd / 8.0, 0.05);
  if (std::isfinite(expected) && expected > 0.0) grid = std::min(grid, expected / 50.0);
  return std::max({grid, 1e-7, floor});
}

// Pessimistic answers at grids h and h/2 differ by about 3/4 of the error at h: connect-the-dots is
// second order in the grid (docs/accounting.md). From two grids we predict the grid that meets the
// target and compute there; if the drop observed on the way is larger than predicted, the
// first-order bound takes over and the grid keeps shrinking. Every answer is an upper bound; the
// smallest is returned. A grid too fine for max_points ends the refinement; so does the work budget.
// The answer on `grid`, or on the first of grid * factor, grid * factor^2, ... where the composition fits
// max_points (a coarser grid is still an upper bound); updates grid to the one used.
GridAnswer first_fitting(PldSolver& solver, double& grid, double factor, std::int64_t max_points) {
  for (; grid <= kMaxGrid; grid *= factor) {
    try {
      return solver.at(grid);
    } catch (const detail::GridTooFine&) {
    }
  }
  std::ostringstream message;
  message << "no grid up to " << kMaxGrid << " fits this run's composition in " << max_points << " points";
  throw detail::GridTooFine(message.str());
}

// first_only: stop after the first grid (an upper bound on what the full refinement returns, which
// takes the minimum over its grids).
PldResult refine(PldSolver& solver, double start_grid, const PldOptions& options, bool first_only) {
  PldResult result;
  double spent = 0.0;
  bool consistent = true;
  std::string problem;
  const auto take = [&](const GridAnswer& a) {
    spent += a.work;
    consistent = consistent && a.consistent;
    if (!a.problem.empty()) problem = a.problem;
  };
  if (options.fixed_grid > 0.0) {
    // The given grid, or a coarser one where the composition does not fit it (still an upper bound).
    double grid = std::max(options.fixed_grid, solver.step_grid_floor());
    const GridAnswer a = first_fitting(solver, grid, 2.0, options.max_points);
    take(a);
    result.value = a.value;
    result.grid = grid;
    result.error_estimate = a.value > 0.0 ? (a.value - a.nominal) / a.value : 0.0;
    result.tight = consistent;
    result.note = problem;
    return result;
  }
  // The first grid: coarsened until the composition fits.
  double coarse_grid = start_grid;
  const std::optional<GridAnswer> coarse = first_fitting(solver, coarse_grid, 4.0, options.max_points);
  take(*coarse);
  double best = coarse->value, best_grid = coarse_grid, gap = coarse->value - coarse->nominal;
  double points = coarse->window_points;
  // Windows scale with 1 / grid (their ends hardly move). A grid whose window would exceed max_points
  // by a margin is not tried: the composition would throw only after its setup.
  const auto surely_too_fine = [&](double from, double to) {
    return 0.95 * points * from / to > static_cast<double>(options.max_points);
  };
  if (first_only) {
    result.value = coarse->value;
    result.grid = coarse_grid;
    result.error_estimate = kInf;
    result.tight = consistent;
    result.note = problem;
    return result;
  }
  double fine_grid = coarse_grid / 2.0;
  double fine_value = kInf;
  double error = kInf;
  try {
    if (coarse->value > 0.0 && spent * 2.0 <= kWorkBudget && !surely_too_fine(coarse_grid, fine_grid)) {
      const GridAnswer fine = solver.at(fine_grid);
      take(fine);
      points = fine.window_points;
      fine_value = fine.value;
      error = std::abs(coarse->value - fine.value) / 3.0;
      if (fine.value <= best) {
        best = fine.value;
        best_grid = fine_grid;
        gap = fine.value - fine.nominal;
      }
    }
  } catch (const detail::GridTooFine&) {
  }
  for (int round = 0; round < 8 && std::isfinite(error) && std::isfinite(fine_value); ++round) {
    if (error <= options.relative_error * fine_value || fine_value == 0.0 || fine_grid <= options.min_grid) break;
    const double ratio = std::clamp(0.8 * std::sqrt(options.relative_error * fine_value / error), 0.05, 0.5);
    const double next_grid = std::max(options.min_grid, fine_grid * ratio);
    // Work grows in inverse proportion to the grid; stop where the budget would run out.
    if (spent + spent * fine_grid / next_grid > kWorkBudget || surely_too_fine(fine_grid, next_grid)) break;
    GridAnswer next;
    try {
      next = solver.at(next_grid);
    } catch (const detail::GridTooFine&) {
      break;
    }
    take(next);
    points = next.window_points;
    const double predicted_drop = error * (1.0 - ratio * ratio);
    const double observed_drop = std::abs(fine_value - next.value);
    error = observed_drop <= 1.5 * predicted_drop + 1e-15 ? error * ratio * ratio
                                                          : observed_drop * next_grid / (fine_grid - next_grid);
    fine_grid = next_grid;
    fine_value = std::min(fine_value, next.value);
    if (next.value <= best) {
      best = next.value;
      best_grid = next_grid;
      gap = next.value - next.nominal;
    }
  }
  result.value = best;
  result.grid = best_grid;
  // With one grid only (a finer one did not fit), the discretisation error is unknown.
  const bool unmeasured = !std::isfinite(error) && best > 0.0 && std::isfinite(best);
  const double grid_error = std::isfinite(error) && best > 0.0 ? error / best : 0.0;
  result.error_estimate = best > 0.0 && std::isfinite(best) ? grid_error + std::max(0.0, gap) / best : 0.0;
  if (unmeasured) result.error_estimate = kInf;
  result.tight = consistent && result.error_estimate <= 10.0 * options.relative_error;
  if (!consistent) {
    result.note = problem;
  } else if (unmeasured) {
    std::ostringstream note;
    note.precision(3);
    note << "PLD accuracy unknown: no grid finer than " << best_grid << " fits the work budget";
    result.note = note.str();
  } else if (!result.tight && std::isfinite(best)) {
    std::ostringstream note;
    note.precision(3);
    note << "PLD answer loose: estimated excess " << result.error_estimate << " relative (grid " << best_grid << ")";
    result.note = note.str();
  }
  return result;
}

// A delta query cuts each step's tails at a budget relative to the expected (RDP) delta, all of it
// counted as infinite loss. Where RDP was far looser than the answer, that charge can be a visible
// part of the answer: solve again on the grid found with tails cut relative to the answer itself and
// keep the smaller (both are upper bounds).
void tighten_tails(const std::vector<GaussianPhase>& phases, const Query& query, double expected,
                   const PldOptions& options, bool first_only, PldResult& result) {
  if (query.kind != Query::Kind::kDelta || first_only || options.fixed_grid > 0.0) return;
  if (!(result.value > 0.0 && std::isfinite(result.value) && result.grid > 0.0)) return;
  if (!(kDeltaTailShare * expected > 0.25 * options.relative_error * result.value)) return;
  PldOptions fixed = options;
  fixed.fixed_grid = result.grid;
  PldSolver tight(phases, query, fixed, result.value);
  const PldResult second = refine(tight, result.grid, fixed, false);
  if (second.value < result.value) result.value = second.value;
}

// expected: an upper bound on the answer (RDP), which guides the first grid and the tail budgets.
PldResult solve(std::span<const GaussianPhase> phases, const Query& query, double expected, const PldOptions& options,
                bool first_only = false, double coarsening = 1.0) {
  options.validate();
  const detail::ReducedPhases reduced = active_phases(phases);
  if (reduced.phases.empty()) return {};
  PldSolver solver(reduced.phases, query, options, query.kind == Query::Kind::kDelta ? expected : 1.0);
  const double expected_epsilon = query.kind == Query::Kind::kEpsilon ? expected : query.target;
  const double start = coarsening * starting_grid(reduced.phases, expected_epsilon, solver.step_grid_floor());
  PldResult result = refine(solver, start, options, first_only);
  tighten_tails(reduced.phases, query, expected, options, first_only, result);
  if (reduced.ratio > 1.0) {
    std::ostringstream note;
    note.precision(6);
    note << phases.size() << " phases composed as " << reduced.phases.size()
         << " dominating ones (q rounded up, sigma down, by at most a factor " << reduced.ratio << ")";
    result.note = result.note.empty() ? note.str() : note.str() + "; " + result.note;
  }
  return result;
}

double rdp_estimate(std::span<const GaussianPhase> phases, double delta) {
  const detail::ReducedPhases reduced = active_phases(phases);
  if (reduced.phases.empty()) return 0.0;
  // A guess for the first grid: the chord-only RDP curve (an upper bound) is good enough.
  return rdp_to_epsilon(default_rdp_orders(), detail::rdp_of_phases_focused(reduced.phases, 0.0, 0.0), delta).value;
}

}  // namespace

void PldOptions::validate() const {
  DPSGD_CHECK_ARG(std::isfinite(relative_error) && relative_error > 0.0 && relative_error < 1.0,
                  "relative_error must be in (0, 1), got " << relative_error);
  DPSGD_CHECK_ARG(std::isfinite(min_grid) && min_grid > 0.0, "min_grid must be > 0, got " << min_grid);
  DPSGD_CHECK_ARG(std::isfinite(fixed_grid) && fixed_grid >= 0.0,
                  "fixed_grid must be finite and >= 0, got " << fixed_grid);
  DPSGD_CHECK_ARG(max_points >= 1024 && max_points <= (std::int64_t{1} << 28),
                  "max_points must be in [1024, 2^28], got " << max_points);
}

double subsampled_gaussian_delta(double sampling_rate, double noise_multiplier, double epsilon,
                                 PldDirection direction) {
  validate_phase(GaussianPhase{sampling_rate, noise_multiplier, 1}, 0);
  DPSGD_CHECK_ARG(!std::isnan(epsilon), "epsilon must not be NaN");
  DPSGD_CHECK_ARG(direction == PldDirection::kRemove || direction == PldDirection::kAdd,
                  "direction must be PldDirection::kRemove or kAdd, got " << static_cast<int>(direction));
  if (sampling_rate == 0.0) return 0.0;
  const detail::BoundedValue d =
      detail::subsampled_gaussian_hockey_stick(sampling_rate, noise_multiplier, epsilon, direction);
  return static_cast<double>(std::min(1.0L, std::max(0.0L, d.value)));
}

PldResult pld_epsilon(std::span<const GaussianPhase> phases, double delta, const PldOptions& options) {
  return detail::pld_epsilon_with_charge(phases, delta, 0.0, options);
}

PldResult pld_delta(std::span<const GaussianPhase> phases, double epsilon, const PldOptions& options) {
  validate_epsilon(epsilon);
  const detail::ReducedPhases reduced = active_phases(phases);
  const double expected =
      reduced.phases.empty()
          ? 1.0
          : rdp_to_delta(default_rdp_orders(), detail::rdp_of_phases_focused(reduced.phases, 0.0, 0.0), epsilon).value;
  return solve(phases, Query{Query::Kind::kDelta, epsilon}, std::max(expected, 1e-300), options);
}

namespace detail {

PldResult pld_epsilon_with_charge(std::span<const GaussianPhase> phases, double delta, double truncation,
                                  const PldOptions& options) {
  validate_delta(delta);
  DPSGD_CHECK_ARG(delta >= kMinDelta, "delta must be >= 1e-300, got " << delta);
  DPSGD_CHECK_ARG(std::isfinite(truncation) && truncation >= 0.0 && truncation < 1.0,
                  "truncation must be in [0, 1), got " << truncation);
  return solve(phases, Query{Query::Kind::kEpsilon, delta, truncation}, rdp_estimate(phases, delta), options);
}

PldResult pld_epsilon_first_grid(std::span<const GaussianPhase> phases, double delta, double truncation,
                                 const PldOptions& options, double coarsening) {
  DPSGD_CHECK_ARG(std::isfinite(coarsening) && coarsening >= 1.0, "coarsening must be >= 1, got " << coarsening);
  validate_delta(delta);
  DPSGD_CHECK_ARG(delta >= kMinDelta, "delta must be >= 1e-300, got " << delta);
  DPSGD_CHECK_ARG(std::isfinite(truncation) && truncation >= 0.0 && truncation < 1.0,
                  "truncation must be in [0, 1), got " << truncation);
  return solve(phases, Query{Query::Kind::kEpsilon, delta, truncation}, rdp_estimate(phases, delta), options, true,
               coarsening);
}

}  // namespace detail
}  // namespace dpsgd

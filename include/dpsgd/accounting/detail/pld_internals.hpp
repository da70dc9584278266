// Internal: the pieces of the PLD accountant (step ranges, discretisation, tilted FFT composition with
// error bounds, the saddlepoint tilt) shared by its source files and tests.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dpsgd/accounting/detail/hockey_stick.hpp"
#include "dpsgd/accounting/pld_direction.hpp"
#include "dpsgd/accounting/privacy_loss_pmf.hpp"
#include "dpsgd/core/error.hpp"

namespace dpsgd::detail {

// Mass one step's discretisation may send to infinity (top) or move up to its lowest point (bottom)
// when the caller sets no budget.
inline constexpr double kDefaultStepTailMass = 1e-30;
// Coarsest grid a step PMF may use: its masses are scaled by e^grid (long double holds e^11000).
inline constexpr double kMaxPmfGrid = 1000.0;

// Per-coefficient error of one FFT of size n over an input of L1 norm 1, in units of
// (log2 n + 2) * unit roundoff. Radix-2 and radix-4 butterflies with accurate twiddles add at most
// a few roundings of the partial sums per stage, and every partial sum of a non-negative input is
// bounded by its L1 norm, so the error of an output is at most a constant times log2(n) u. The
// constant is checked against exact long double convolutions in pld_composition_test.
inline constexpr double kFftErrorConstant = 10.0;

// The loss range one step's PMF covers.
struct StepRange {
  Real lowest = 0.0L;
  Real highest = 0.0L;
};

// Losses beyond `highest` carry delta(highest) <= top_mass, which becomes infinity mass; losses below
// `lowest` have probability <= bottom_mass and are moved up to it (both pessimistic).
StepRange subsampled_gaussian_range(double sampling_rate, double noise_multiplier, PldDirection direction,
                                    double top_mass, double bottom_mass);

// Connect-the-dots on {k grid} over `range`, built through upper bounds on the exact delta with room
// for the rounding of the construction, so the result dominates the mechanism at every epsilon.
// Throws InvalidArgument when the range needs more than 2^26 points.
PrivacyLossPmf discretise_subsampled_gaussian(double sampling_rate, double noise_multiplier, double grid,
                                              PldDirection direction, const StepRange& range);

// Thrown when a composition would need more grid points than allowed: the caller coarsens the grid.
class GridTooFine : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// The composition of tilted PMFs by FFT, with a bound on every error that could make it optimistic.
// Exact tilted composed mass at loss index first + m <= (max(coefficients[m], 0) + coefficient_error)
// * exp(log_slack), and the untilted mass is the tilted one times exp(log_scale - tilt * loss).
// Untilted mass above the window is in infinity_mass; mass below it is unknown and bounded by 1.
struct TiltedComposition {
  double grid = 0.0;
  std::int64_t first = 0;
  std::vector<double> coefficients;
  double coefficient_error = 0.0;
  double tilt = 0.0;
  double log_scale = 0.0;
  double log_slack = 0.0;
  double infinity_mass = 0.0;
  double tilted_total = 0.0;   // sum of the FFT's coefficients: 1 up to rounding and aliased tails
  std::size_t fft_points = 0;  // length of the transform (the coefficients above the window are dropped)
  double window_points = 0.0;  // points the window needed (at most fft_points)

  // The untilted masses as upper bounds, capped at 1, with mass 1 at the lowest point standing for
  // everything below the window. with_error = false leaves out coefficient_error and log_slack: the
  // nominal values, to measure how much the error bounds cost.
  PrivacyLossPmf pessimistic(bool with_error = true) const;

  // The upper bound on the untilted mass at window index m (what pessimistic() stores), computed
  // on demand: queries walk down from the top and stop at their answer.
  double mass_bound(std::size_t m, bool with_error) const;
  double delta_for_epsilon(double epsilon, bool with_error = true) const;
  double epsilon_for_delta(double delta, bool with_error = true) const;
};

// The steps of one direction on one grid, with the log-mass tables that every tilt decision and the
// composition read (built once: a table costs a log per grid point).
class PldComposer {
 public:
  // Throws InvalidArgument on mismatched or invalid PMFs and counts.
  PldComposer(std::vector<PrivacyLossPmf> pmfs, std::vector<std::int64_t> counts);

  // The composition by FFT at `tilt`. tail_mass: tilted mass allowed below the window;
  // infinity_budget: untilted mass allowed above it (it becomes infinity mass). Throws GridTooFine
  // when the window exceeds max_points.
  TiltedComposition compose(double tilt, double tail_mass, double infinity_budget, std::int64_t max_points) const;

  // The tilt lambda >= 0 at which the tilted composition has mean `target_loss` (the saddlepoint of
  // its Chernoff bound there), capped at max_tilt; 0 when the untilted mean is already above it.
  double saddlepoint_tilt(double target_loss, double max_tilt) const;
  // The tilt at which the saddlepoint approximation of the composition's delta(epsilon) equals
  // `delta`: a guess of where an epsilon query will land, before any FFT. Capped at max_tilt.
  double saddlepoint_tilt_for_delta(double delta, double max_tilt) const;
  // The mean of the composition tilted by `tilt` (K'(tilt)).
  double tilted_mean(double tilt) const;
  // A tilt no larger than saddle_tilt that makes the FFT window narrow while keeping the predicted
  // cost of the error bounds at target_loss below gap_limit (relative to target_delta). The
  // saddlepoint tilt centres the tilted composition on the answer, which also magnifies rare large
  // losses (small q, small sigma): their tilted tail can make the window ten times wider than the
  // untilted distribution needs. Returns saddle_tilt when no smaller tilt is predicted to do.
  // fft_grid: the grid the compositions will use (the decision may be taken on a coarser copy).
  double economical_tilt(double saddle_tilt, double target_loss, double target_delta, double tail_mass,
                         double infinity_budget, double gap_limit, double fft_grid) const;

 private:
  struct Tables;
  std::vector<PrivacyLossPmf> pmfs_;
  std::vector<std::int64_t> counts_;
  std::shared_ptr<const Tables> tables_;
};

}  // namespace dpsgd::detail

// PLD accounting of the Poisson-subsampled Gaussian: connect-the-dots discretisation, FFT composition
// with exponential tilting and explicit error bounds, and epsilon/delta queries on an adaptive grid.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "dpsgd/accounting/gaussian_phase.hpp"
#include "dpsgd/accounting/pld_direction.hpp"
#include "dpsgd/accounting/privacy_loss_pmf.hpp"

namespace dpsgd {

// Exact hockey-stick divergence delta(epsilon) of one step in the given direction (closed form
// through normal CDFs, computed in long double, valid for any epsilon and any q in (0, 1]).
double subsampled_gaussian_delta(double sampling_rate, double noise_multiplier, double epsilon, PldDirection direction);

// One step's PLD discretised on the grid {k * grid} by connect-the-dots (Doroshenko, Ghazi, Kamath,
// Kumar & Manurangsi 2022): the discrete delta(epsilon) passes through upper bounds on the exact
// one at every grid point and, by convexity of delta in e^epsilon, lies above it in between. Losses
// whose delta is below max_infinity_mass (1e-30 when 0) go to infinity_mass; the lower tail (below
// probability 1e-30) moves up to the lowest grid point; both pessimistic.
PrivacyLossPmf subsampled_gaussian_pmf(double sampling_rate, double noise_multiplier, double grid,
                                       PldDirection direction, double max_infinity_mass = 0.0);

struct CompositionOptions {
  // Mass of the composed distribution allowed outside the FFT window on each side (Chernoff
  // bounds); the upper part is added to infinity_mass, so the result stays pessimistic.
  double tail_mass = 1e-15;
  // Exponential tilt lambda: the PMFs are multiplied by e^(lambda L) before the FFT and divided after,
  // which moves the FFT's round-off (relative to the largest coefficient) from the bulk of the
  // distribution to the region L ~ epsilon where small deltas are decided. 0 disables it.
  double tilt = 0.0;
  // Refuse windows larger than this many grid points (memory and time guard).
  std::int64_t max_points = std::int64_t{1} << 24;
};

// The composition of `counts[j]` copies of `pmfs[j]` (all on the same grid) by FFT. Every mass of the
// result is an upper bound on the exact composed mass at its point: the FFT's round-off, the
// rounding of the tilt, and the mass cut off above the window (to infinity_mass) are bounded and
// added, and the mass below the window is bounded by 1 at the lowest point. The masses may therefore
// sum to more than 1; delta_for_epsilon and epsilon_for_delta then give upper bounds.
PrivacyLossPmf compose_pmfs(std::span<const PrivacyLossPmf> pmfs, std::span<const std::int64_t> counts,
                            const CompositionOptions& options = {});

struct PldOptions {
  // Target relative error of the reported epsilon (or delta): the grid is refined until the
  // estimated excess over the exact answer is below this fraction, or the work budget is spent.
  double relative_error = 1e-4;
  // Finest grid tried.
  double min_grid = 1e-7;
  // Largest FFT window (grid points) of one composition.
  std::int64_t max_points = std::int64_t{1} << 22;
  // > 0: skip the refinement and answer on this grid (still an upper bound). Calibration uses the
  // grid found for one sigma for its neighbours, one composition per query instead of three.
  double fixed_grid = 0.0;

  // Throws InvalidArgument naming the field that is out of range.
  void validate() const;
};

struct PldResult {
  double value = 0.0;           // epsilon (or delta): an upper bound
  double grid = 0.0;            // grid of the final answer
  double error_estimate = 0.0;  // estimated relative excess of value over the exact answer
  // False when the answer could not be made tight: the composition's error bounds dominate it, an
  // internal check failed, or the work budget ran out far from the target accuracy. The value is
  // still an upper bound; the accountant then also consults RDP and says which it reports.
  bool tight = true;
  std::string note;  // what limited the answer, when something did
};

// epsilon for the composition of the phases at `delta`, max over both directions. Throws
// InvalidArgument for invalid phases or delta (delta must be in [1e-300, 1)).
PldResult pld_epsilon(std::span<const GaussianPhase> phases, double delta, const PldOptions& options = {});
PldResult pld_delta(std::span<const GaussianPhase> phases, double epsilon, const PldOptions& options = {});

}  // namespace dpsgd

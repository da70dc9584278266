// PLD accounting of the Poisson-subsampled Gaussian: connect-the-dots discretisation, FFT composition
// with exponential tilting, and epsilon/delta queries with an adaptive grid.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/accounting/gaussian_phase.hpp"
#include "dpsgd/accounting/privacy_loss_pmf.hpp"

namespace dpsgd {

// The two halves of add/remove adjacency. For Poisson sampling they differ, and a guarantee for
// add/remove needs the larger of the two.
enum class PldDirection : int {
  kRemove = 0,  // mu = (1 - q) N(0, s^2) + q N(-1, s^2) against N(0, s^2)
  kAdd = 1,     // N(0, s^2) against (1 - q) N(0, s^2) + q N(1, s^2)
};

// Exact hockey-stick divergence delta(epsilon) of one step in the given direction (closed form
// through normal CDFs, computed in long double).
double subsampled_gaussian_delta(double sampling_rate, double noise_multiplier, double epsilon, PldDirection direction);

// One step's PLD discretised on the grid {k * grid} by connect-the-dots (Doroshenko, Ghazi, Kamath,
// Kumar & Manurangsi 2022): the masses are chosen so that the discrete delta(epsilon) equals the
// exact one at every grid point and, by convexity of delta in e^epsilon, lies above it in between.
// Losses beyond 10 standard deviations of the noise go to infinity_mass (upper end) or the lowest
// grid point (lower end), both pessimistic. A positive max_infinity_mass lowers the top grid point
// to where delta(top) = max_infinity_mass, which becomes the infinity mass: still pessimistic, and
// much shorter for long compositions.
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

// The composition of `counts[j]` copies of `pmfs[j]` (all on the same grid) by FFT.
PrivacyLossPmf compose_pmfs(std::span<const PrivacyLossPmf> pmfs, std::span<const std::int64_t> counts,
                            const CompositionOptions& options = {});

struct PldOptions {
  // Target relative error of the reported epsilon (or delta): the grid is halved until two
  // successive pessimistic answers differ by less than this fraction.
  double relative_error = 1e-4;
  // Finest grid tried; the answer at the last grid is returned even if the target was not met.
  double min_grid = 1e-7;
  std::int64_t max_points = std::int64_t{1} << 23;
  // > 0: skip the refinement and answer on this grid (still an upper bound). Calibration uses the
  // grid found for one sigma for its neighbours, one composition per query instead of three.
  double fixed_grid = 0.0;
};

struct PldResult {
  double value = 0.0;           // epsilon (or delta), an upper bound
  double grid = 0.0;            // grid of the final answer
  double error_estimate = 0.0;  // |answer(grid) - answer(2 grid)| / answer(grid)
};

// epsilon for the composition of the phases at `delta`, max over both directions. Throws
// InvalidArgument for invalid phases or delta.
PldResult pld_epsilon(std::span<const GaussianPhase> phases, double delta, const PldOptions& options = {});
PldResult pld_delta(std::span<const GaussianPhase> phases, double epsilon, const PldOptions& options = {});

}  // namespace dpsgd

// PLD of the Poisson-subsampled Gaussian: connect-the-dots discretisation and tilted FFT composition.
#include "dpsgd/accounting/pld.hpp"

#include <unsupported/Eigen/FFT>

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <vector>

#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {
namespace {

using Real = long double;
constexpr double kInf = std::numeric_limits<double>::infinity();
// Half-width of the noise distributions kept in the discretisation, in standard deviations:
// Pr[|Z| > 10] = 1.5e-23, below anything an (epsilon, delta) query resolves.
constexpr Real kTailSigmas = 10.0L;

Real normal_cdf(Real x) { return 0.5L * std::erfc(-x / std::sqrt(2.0L)); }

struct SubsampledGaussian {
  Real q, sigma;
  PldDirection direction;

  // Privacy loss at noise value x (non-increasing in x for both directions).
  Real loss(Real x) const {
    const Real s2 = sigma * sigma;
    if (direction == PldDirection::kRemove) {
      const Real l0 = (-2.0L * x - 1.0L) / (2.0L * s2);
      return q == 1.0L ? l0 : std::log1p(q * std::expm1(l0));
    }
    const Real l1 = (2.0L * x - 1.0L) / (2.0L * s2);
    return q == 1.0L ? -l1 : -std::log1p(q * std::expm1(l1));
  }

  // Exact hockey-stick divergence: delta(eps) = P_upper[L > eps] - e^eps P_lower[L > eps], and
  // {L > eps} = {x < x*(eps)} since L is decreasing.
  Real delta(Real eps) const {
    const Real s2 = sigma * sigma;
    const Real e = std::exp(eps);
    if (direction == PldDirection::kRemove) {
      // 1 - q + q e^(l0(x)) > e^eps  <=>  l0(x) > log((e^eps - 1 + q) / q)
      const Real inner = (std::expm1(eps) + q) / q;
      if (inner <= 0.0L) return -std::expm1(eps);  // every x has loss > eps
      const Real x_star = -s2 * std::log(inner) - 0.5L;
      const Real base = normal_cdf(x_star / sigma);
      const Real upper = q * normal_cdf((x_star + 1.0L) / sigma) + (1.0L - q) * base;
      return std::max(0.0L, upper - e * base);
    }
    // -log(1 - q + q e^(l1(x))) > eps  <=>  l1(x) < log((e^-eps - 1 + q) / q)
    const Real inner = (std::expm1(-eps) + q) / q;
    if (inner <= 0.0L) return 0.0L;  // the add-direction loss never exceeds -log(1 - q)
    const Real x_star = s2 * std::log(inner) + 0.5L;
    const Real base = normal_cdf(x_star / sigma);
    const Real lower = q * normal_cdf((x_star - 1.0L) / sigma) + (1.0L - q) * base;
    return std::max(0.0L, base - e * lower);
  }

  // Loss range outside of which the noise has less than Pr[|Z| > 10] mass.
  void loss_range(Real& lowest, Real& highest) const {
    const Real shift = direction == PldDirection::kRemove ? -1.0L : 1.0L;
    const Real x_low = std::min(0.0L, shift) - kTailSigmas * sigma;
    const Real x_high = std::max(0.0L, shift) + kTailSigmas * sigma;
    highest = loss(x_low);
    lowest = loss(x_high);
  }
};

void validate_phase(const GaussianPhase& phase, std::size_t k) {
  DPSGD_CHECK_ARG(std::isfinite(phase.sampling_rate) && phase.sampling_rate >= 0.0 && phase.sampling_rate <= 1.0,
                  "phases[" << k << "].sampling_rate must be in [0, 1], got " << phase.sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(phase.noise_multiplier) && phase.noise_multiplier > 0.0,
                  "phases[" << k << "].noise_multiplier must be finite and > 0, got " << phase.noise_multiplier);
  DPSGD_CHECK_ARG(phase.steps >= 0, "phases[" << k << "].steps must be >= 0, got " << phase.steps);
}

// Phases that release something: q > 0 and at least one step.
std::vector<GaussianPhase> active_phases(std::span<const GaussianPhase> phases) {
  DPSGD_CHECK_ARG(!phases.empty(), "phases must hold at least one phase");
  std::vector<GaussianPhase> active;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    validate_phase(phases[k], k);
    if (phases[k].sampling_rate > 0.0 && phases[k].steps > 0) active.push_back(phases[k]);
  }
  return active;
}

// The finite part of a PMF as (log mass, loss) pairs, zero masses dropped: each log-MGF evaluation
// is then one exp per point.
struct LogMassTable {
  std::vector<double> log_mass, loss;

  explicit LogMassTable(const PrivacyLossPmf& pmf) {
    for (std::size_t j = 0; j < pmf.mass.size(); ++j) {
      if (pmf.mass[j] <= 0.0) continue;
      log_mass.push_back(std::log(pmf.mass[j]));
      loss.push_back(pmf.grid * static_cast<double>(pmf.offset + static_cast<std::int64_t>(j)));
    }
  }

  // log E[e^(lambda L)] over the finite part.
  double log_mgf(double lambda) const {
    double peak = -kInf;
    for (std::size_t j = 0; j < loss.size(); ++j) peak = std::max(peak, log_mass[j] + lambda * loss[j]);
    if (peak == -kInf) return -kInf;
    double sum = 0.0;
    for (std::size_t j = 0; j < loss.size(); ++j) sum += std::exp(log_mass[j] + lambda * loss[j] - peak);
    return peak + std::log(sum);
  }
};

}  // namespace

double subsampled_gaussian_delta(double sampling_rate, double noise_multiplier, double epsilon,
                                 PldDirection direction) {
  validate_phase(GaussianPhase{sampling_rate, noise_multiplier, 1}, 0);
  DPSGD_CHECK_ARG(!std::isnan(epsilon), "epsilon must not be NaN");
  DPSGD_CHECK_ARG(direction == PldDirection::kRemove || direction == PldDirection::kAdd,
                  "direction must be PldDirection::kRemove or kAdd, got " << static_cast<int>(direction));
  if (sampling_rate == 0.0) return 0.0;
  return static_cast<double>(SubsampledGaussian{sampling_rate, noise_multiplier, direction}.delta(epsilon));
}

PrivacyLossPmf subsampled_gaussian_pmf(double sampling_rate, double noise_multiplier, double grid,
                                       PldDirection direction, double max_infinity_mass) {
  validate_phase(GaussianPhase{sampling_rate, noise_multiplier, 1}, 0);
  DPSGD_CHECK_ARG(sampling_rate > 0.0, "sampling_rate must be > 0 for a PLD, got " << sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(grid) && grid > 0.0, "grid must be finite and > 0, got " << grid);
  DPSGD_CHECK_ARG(direction == PldDirection::kRemove || direction == PldDirection::kAdd,
                  "direction must be PldDirection::kRemove or kAdd, got " << static_cast<int>(direction));
  DPSGD_CHECK_ARG(max_infinity_mass >= 0.0 && max_infinity_mass < 1.0,
                  "max_infinity_mass must be in [0, 1), got " << max_infinity_mass);
  const SubsampledGaussian mechanism{sampling_rate, noise_multiplier, direction};
  Real lowest, highest;
  mechanism.loss_range(lowest, highest);
  if (max_infinity_mass > 0.0 && mechanism.delta(highest) < max_infinity_mass) {
    // Any top point is valid when its delta becomes the infinity mass; the lowest one within budget
    // shortens the grid, which matters for long compositions with heavy tilted tails.
    Real lo = lowest, hi = highest;
    for (int it = 0; it < 100 && hi - lo > 1e-3L * static_cast<Real>(grid); ++it) {
      const Real mid = 0.5L * (lo + hi);
      (mechanism.delta(mid) <= max_infinity_mass ? hi : lo) = mid;
    }
    highest = hi;
  }
  const auto first = static_cast<std::int64_t>(std::floor(lowest / grid));
  const auto last = std::max(first + 2, static_cast<std::int64_t>(std::ceil(highest / grid)));
  const std::int64_t n = last - first + 1;
  DPSGD_CHECK_ARG(n <= (std::int64_t{1} << 26),
                  "grid " << grid << " needs " << n << " points for one step; use a coarser grid");

  // Exact delta at every grid point, then masses from the slopes of delta as a function of e^eps:
  // on [u_i, u_(i+1)] the discrete curve has slope s_i = -sum_(j>i) p_j e^-eps_j, so
  // p_i e^-eps_i = s_i - s_(i-1), the top point takes -s_(n-2), and delta(top) is the infinity mass.
  std::vector<Real> deltas(static_cast<std::size_t>(n)), slopes(static_cast<std::size_t>(n - 1));
#pragma omp parallel for schedule(static) if (n > 20000)
  for (std::int64_t i = 0; i < n; ++i) deltas[i] = mechanism.delta(static_cast<Real>(first + i) * grid);
  for (std::int64_t i = 0; i + 1 < n; ++i) {
    const Real eps_i = static_cast<Real>(first + i) * grid;
    const Real du = std::exp(eps_i) * std::expm1(static_cast<Real>(grid));
    slopes[i] = (deltas[i + 1] - deltas[i]) / du;
  }
  PrivacyLossPmf pmf;
  pmf.grid = grid;
  pmf.offset = first;
  pmf.mass.assign(static_cast<std::size_t>(n), 0.0);
  pmf.infinity_mass = static_cast<double>(deltas[n - 1]);
  Real total = deltas[n - 1];
  for (std::int64_t i = n - 1; i >= 1; --i) {
    const Real eps_i = static_cast<Real>(first + i) * grid;
    const Real right_slope = i + 1 < n ? slopes[i] : 0.0L;
    const Real p = std::max(0.0L, (right_slope - slopes[i - 1]) * std::exp(eps_i));
    pmf.mass[i] = static_cast<double>(p);
    total += p;
  }
  pmf.mass[0] = static_cast<double>(std::max(0.0L, 1.0L - total));  // the lower tail, moved up to the lowest point
  return pmf;
}

PrivacyLossPmf compose_pmfs(std::span<const PrivacyLossPmf> pmfs, std::span<const std::int64_t> counts,
                            const CompositionOptions& options) {
  DPSGD_CHECK_ARG(
      !pmfs.empty() && pmfs.size() == counts.size(),
      "pmfs and counts must be non-empty and of equal size, got " << pmfs.size() << " and " << counts.size());
  DPSGD_CHECK_ARG(std::isfinite(options.tail_mass) && options.tail_mass > 0.0 && options.tail_mass < 1e-3,
                  "tail_mass must be in (0, 1e-3), got " << options.tail_mass);
  DPSGD_CHECK_ARG(std::isfinite(options.tilt) && options.tilt >= 0.0,
                  "tilt must be finite and >= 0, got " << options.tilt);
  const double grid = pmfs[0].grid;
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    DPSGD_CHECK_ARG(pmfs[j].grid == grid, "pmfs[" << j << "].grid = " << pmfs[j].grid << " differs from " << grid);
    DPSGD_CHECK_ARG(!pmfs[j].mass.empty(), "pmfs[" << j << "] has no finite mass");
    DPSGD_CHECK_ARG(counts[j] >= 1, "counts[" << j << "] must be >= 1, got " << counts[j]);
  }
  const double tilt = options.tilt;
  std::vector<LogMassTable> tables;
  std::vector<double> log_norm(pmfs.size());
  double log_scale = 0.0;  // sum_j T_j log M_j(tilt): undoes the normalisation when untilting
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    tables.emplace_back(pmfs[j]);
    log_norm[j] = tables[j].log_mgf(tilt);
    log_scale += static_cast<double>(counts[j]) * log_norm[j];
  }
  // Cumulant generating function of the tilted composition, K(mu) = sum_j T_j (log M_j(tilt + mu) - log M_j(tilt)).
  const auto cumulant = [&](double mu) {
    double k = 0.0;
    for (std::size_t j = 0; j < pmfs.size(); ++j)
      k += static_cast<double>(counts[j]) * (tables[j].log_mgf(tilt + mu) - log_norm[j]);
    return k;
  };
  // Chernoff: Pr[S > u] <= exp(K(mu) - mu u) for mu > 0 (and symmetrically below). Any mu gives a
  // valid bound; a geometric grid with ratio 4 comes within a small factor of the best window.
  const double log_tail = std::log(options.tail_mass);
  double upper = kInf, lower = -kInf;
  for (double mu = 1e-3; mu <= 1e5; mu *= 4.0) {
    upper = std::min(upper, (cumulant(mu) - log_tail) / mu);
    lower = std::max(lower, -(cumulant(-mu) - log_tail) / mu);
  }
  std::int64_t min_index = 0, max_index = 0;
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    min_index += counts[j] * pmfs[j].offset;
    max_index += counts[j] * (pmfs[j].offset + static_cast<std::int64_t>(pmfs[j].mass.size()) - 1);
  }
  const std::int64_t first = std::max(min_index, static_cast<std::int64_t>(std::floor(lower / grid)));
  const std::int64_t last = std::min(max_index, static_cast<std::int64_t>(std::ceil(upper / grid)));
  std::int64_t width = std::max<std::int64_t>(last - first + 1, 1);
  for (const auto& pmf : pmfs) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(pmf.mass.size()));
  std::int64_t size = 1;
  while (size < width) size *= 2;
  DPSGD_CHECK_ARG(size <= options.max_points,
                  "the composition needs " << size << " grid points, more than max_points = " << options.max_points
                                           << "; use a coarser grid");

  Eigen::FFT<double> fft;
  fft.SetFlag(Eigen::FFT<double>::HalfSpectrum);
  std::vector<std::complex<double>> product;
  std::vector<double> buffer(static_cast<std::size_t>(size));
  std::vector<std::complex<double>> spectrum;
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    std::fill(buffer.begin(), buffer.end(), 0.0);
    const auto& pmf = pmfs[j];
    for (std::size_t i = 0; i < pmf.mass.size(); ++i) {
      if (pmf.mass[i] <= 0.0) continue;
      const double loss = grid * static_cast<double>(pmf.offset + static_cast<std::int64_t>(i));
      buffer[i] = std::exp(std::log(pmf.mass[i]) + tilt * loss - log_norm[j]);
    }
    fft.fwd(spectrum, buffer);
    if (product.empty()) product.assign(spectrum.size(), std::complex<double>(1.0, 0.0));
    const double power = static_cast<double>(counts[j]);
    for (std::size_t f = 0; f < spectrum.size(); ++f) {
      const double magnitude = std::abs(spectrum[f]);
      if (magnitude == 0.0) {
        product[f] = 0.0;
        continue;
      }
      // z^T through its polar form: T log|z| and T arg z, reduced modulo 2 pi in long double.
      const long double angle = std::fmod(static_cast<long double>(power) * std::arg(spectrum[f]),
                                          2.0L * 3.14159265358979323846264338327950288L);
      product[f] *= std::polar(std::exp(power * std::log(magnitude)), static_cast<double>(angle));
    }
  }
  std::vector<double> composed;
  fft.inv(composed, product, size);

  PrivacyLossPmf result;
  result.grid = grid;
  result.offset = first;
  result.mass.assign(static_cast<std::size_t>(size), 0.0);
  for (std::int64_t m = 0; m < size; ++m) {
    const double c = composed[static_cast<std::size_t>(m)];
    if (!(c > 0.0)) continue;  // FFT round-off can leave tiny negatives where the mass is zero
    const std::int64_t position = (((min_index + m - first) % size) + size) % size;
    const double loss = grid * static_cast<double>(first + position);
    result.mass[static_cast<std::size_t>(position)] = std::exp(std::log(c) + log_scale - tilt * loss);
  }
  double log_finite = 0.0;
  for (std::size_t j = 0; j < pmfs.size(); ++j)
    log_finite += static_cast<double>(counts[j]) * std::log1p(-pmfs[j].infinity_mass);
  // Mass cut off above the window: at most tail_mass in the tilted measure, hence at most
  // tail_mass e^(K - tilt * upper) untilted; counted as infinite loss to stay pessimistic.
  const double truncated = upper < kInf ? std::exp(log_tail + log_scale - tilt * upper) : 0.0;
  result.infinity_mass = std::min(1.0, -std::expm1(log_finite) + truncated);
  return result;
}

namespace {

// Grid to start the refinement from: an eighth of the standard deviation of one step's privacy loss
// (q sqrt(e^(1/sigma^2) - 1) for small q, 1/sigma at q = 1), so the coarsest grid already resolves a
// step, and at most a fiftieth of the RDP epsilon.
double starting_grid(std::span<const GaussianPhase> phases, double rdp_epsilon) {
  double step_sd = kInf;
  for (const auto& phase : phases) {
    const double s = phase.noise_multiplier;
    const double spread = phase.sampling_rate * std::sqrt(std::expm1(std::min(1.0 / (s * s), 700.0)));
    step_sd = std::min(step_sd, std::min(1.0 / s, spread));
  }
  double grid = step_sd / 8.0;
  if (std::isfinite(rdp_epsilon) && rdp_epsilon > 0.0) grid = std::min(grid, rdp_epsilon / 50.0);
  return std::clamp(grid, 1e-6, 0.05);
}

struct RdpGuess {
  double epsilon;
  double order;
};

RdpGuess rdp_guess(std::span<const GaussianPhase> phases, double delta) {
  const RdpConversion c = rdp_to_epsilon(default_rdp_orders(), rdp_of_phases(phases), delta);
  return {c.value, c.order};
}

// The composed PLD of all phases in one direction on one grid.
PrivacyLossPmf composed_pmf(std::span<const GaussianPhase> phases, double grid, PldDirection direction, double tilt,
                            std::int64_t max_points, double infinity_budget) {
  std::int64_t total_steps = 0;
  for (const auto& phase : phases) total_steps += phase.steps;
  std::vector<PrivacyLossPmf> pmfs;
  std::vector<std::int64_t> counts;
  for (const auto& phase : phases) {
    pmfs.push_back(subsampled_gaussian_pmf(phase.sampling_rate, phase.noise_multiplier, grid, direction,
                                           infinity_budget / static_cast<double>(total_steps)));
    counts.push_back(phase.steps);
  }
  CompositionOptions options;
  options.tilt = tilt;
  options.max_points = max_points;
  return compose_pmfs(pmfs, counts, options);
}

// Pessimistic answers at grids h and h/2 differ by about 3/4 of the error at h: connect-the-dots is
// second order in the grid (measured: halving the grid quarters the excess, docs/accounting.md). So
// from two coarse grids we predict the grid that meets the target and compute there; if the drop
// observed on the way is larger than predicted, the first-order bound takes over and the grid is
// halved until it holds. Every answer is an upper bound; the smallest one is returned.
template <typename Query>
PldResult refine(std::span<const GaussianPhase> phases, double start_grid, double tilt, double infinity_budget,
                 const PldOptions& options, Query&& query) {
  const auto answer_at = [&](double grid) {
    double value = 0.0;
    for (PldDirection direction : {PldDirection::kRemove, PldDirection::kAdd}) {
      value = std::max(value, query(composed_pmf(phases, grid, direction, tilt, options.max_points, infinity_budget)));
    }
    return value;
  };
  if (options.fixed_grid > 0.0) return {answer_at(options.fixed_grid), options.fixed_grid, 0.0};
  double coarse_grid = start_grid;
  double coarse = answer_at(coarse_grid);
  double fine_grid = coarse_grid / 2.0;
  double fine = answer_at(fine_grid);
  double error = std::abs(coarse - fine) / 3.0;
  for (int round = 0; round < 8; ++round) {
    if (error <= options.relative_error * fine || fine == 0.0 || fine_grid <= options.min_grid) break;
    const double ratio = std::clamp(0.8 * std::sqrt(options.relative_error * fine / error), 0.05, 0.5);
    const double next_grid = std::max(options.min_grid, fine_grid * ratio);
    double next;
    try {
      next = answer_at(next_grid);
    } catch (const InvalidArgument&) {
      break;  // the grid no longer fits in max_points: keep the last answer and its estimate
    }
    const double predicted_drop = error * (1.0 - ratio * ratio);
    const double observed_drop = std::abs(fine - next);
    error = observed_drop <= 1.5 * predicted_drop + 1e-15 ? error * ratio * ratio
                                                          : observed_drop * next_grid / (fine_grid - next_grid);
    coarse_grid = fine_grid;
    fine_grid = next_grid;
    fine = std::min(fine, next);
  }
  return {fine, fine_grid, fine > 0.0 ? error / fine : 0.0};
}

void validate_options(const PldOptions& options) {
  DPSGD_CHECK_ARG(std::isfinite(options.relative_error) && options.relative_error > 0.0 && options.relative_error < 1.0,
                  "relative_error must be in (0, 1), got " << options.relative_error);
  DPSGD_CHECK_ARG(std::isfinite(options.min_grid) && options.min_grid > 0.0,
                  "min_grid must be > 0, got " << options.min_grid);
  DPSGD_CHECK_ARG(std::isfinite(options.fixed_grid) && options.fixed_grid >= 0.0,
                  "fixed_grid must be finite and >= 0, got " << options.fixed_grid);
}

}  // namespace

PldResult pld_epsilon(std::span<const GaussianPhase> phases, double delta, const PldOptions& options) {
  validate_delta(delta);
  validate_options(options);
  const std::vector<GaussianPhase> active = active_phases(phases);
  if (active.empty()) return {0.0, 0.0, 0.0};
  const RdpGuess guess = rdp_guess(active, delta);
  // Tilt by the RDP-optimal order minus one: the Chernoff exponent of the tail at the target epsilon.
  const double tilt = std::isfinite(guess.epsilon) ? std::max(0.0, guess.order - 1.0) : 0.0;
  // Tail cut into the infinity mass: at most 1e-4 of delta over the whole run, which moves epsilon by
  // far less than the grid error.
  return refine(active, starting_grid(active, guess.epsilon), tilt, 1e-4 * delta, options,
                [&](const PrivacyLossPmf& pmf) { return pmf.epsilon_for_delta(delta); });
}

PldResult pld_delta(std::span<const GaussianPhase> phases, double epsilon, const PldOptions& options) {
  validate_epsilon(epsilon);
  validate_options(options);
  const std::vector<GaussianPhase> active = active_phases(phases);
  if (active.empty()) return {0.0, 0.0, 0.0};
  // The order whose RDP bound is tightest at this epsilon sets the tilt.
  const RdpConversion c = rdp_to_delta(default_rdp_orders(), rdp_of_phases(active), epsilon);
  const double tilt = std::max(0.0, c.order - 1.0);
  return refine(active, starting_grid(active, kInf), tilt, 1e-14, options,
                [&](const PrivacyLossPmf& pmf) { return pmf.delta_for_epsilon(epsilon); });
}

}  // namespace dpsgd

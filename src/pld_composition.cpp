// Tilted FFT composition of privacy loss PMFs (FFTW), with bounds on rounding, aliasing and cut tails.
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <sstream>
#include <vector>

#include "dpsgd/accounting/detail/hockey_stick_queries.hpp"
#include "dpsgd/accounting/detail/pld_internals.hpp"
#include "dpsgd/accounting/pld.hpp"
#include "fftw_planner.hpp"

namespace dpsgd {
namespace detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kUnit = std::numeric_limits<double>::epsilon() / 2;
constexpr Real kUnitLd = std::numeric_limits<Real>::epsilon() / 2;
constexpr Real kTwoPi = 2.0L * std::numbers::pi_v<Real>;
// Step counts below this are raised to their power by repeated squaring (cheaper than the polar form's
// five transcendental calls per frequency).
// Largest mass one point may carry: 1 plus room for a pessimistic discretisation's upward rounding.
constexpr double kMaxPointMass = 1.0 + 1e-6;
constexpr std::int64_t kSquaringLimit = std::int64_t{1} << 16;

// FFTW plans of one size, made once per process. Planning is not thread-safe and takes milliseconds;
// FFTW_ESTIMATE picks the algorithm without timing runs, so results are reproducible. Executing a
// plan on other arrays of the same alignment (fftw_malloc) is thread-safe.
struct FftPlans {
  fftw_plan forward = nullptr;
  fftw_plan inverse = nullptr;
};

// Owns every plan made; at exit it destroys them and FFTW's planner state, so the process ends with
// nothing FFTW allocated still held (leak checkers see a clean exit).
class PlanCache {
 public:
  // The lock and the count it reads at exit are made first, so they are destroyed after the cache.
  PlanCache() {
    (void)detail::fftw_planner_mutex();
    (void)detail::fftw_plans_held_elsewhere();
  }
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;
  ~PlanCache() {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    for (auto& [n, plans] : cache_) {
      if (plans.forward != nullptr) fftw_destroy_plan(plans.forward);
      if (plans.inverse != nullptr) fftw_destroy_plan(plans.inverse);
    }
    if (detail::fftw_plans_held_elsewhere() == 0) fftw_cleanup();
  }

  const FftPlans& plans_for(std::size_t n) {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    const auto found = cache_.find(n);
    if (found != cache_.end()) return found->second;
    double* real = fftw_alloc_real(n);
    fftw_complex* spectrum = fftw_alloc_complex(n / 2 + 1);
    FftPlans plans;
    plans.forward = fftw_plan_dft_r2c_1d(static_cast<int>(n), real, spectrum, FFTW_ESTIMATE);
    plans.inverse = fftw_plan_dft_c2r_1d(static_cast<int>(n), spectrum, real, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
    fftw_free(real);
    fftw_free(spectrum);
    if (plans.forward == nullptr || plans.inverse == nullptr) {
      if (plans.forward != nullptr) fftw_destroy_plan(plans.forward);
      if (plans.inverse != nullptr) fftw_destroy_plan(plans.inverse);
      throw Error("dpsgd: FFTW could not plan a transform");
    }
    return cache_.emplace(n, plans).first->second;
  }

 private:
  std::map<std::size_t, FftPlans> cache_;  // guarded by the planner lock
};

const FftPlans& plans_for(std::size_t n) {
  static PlanCache cache;
  return cache.plans_for(n);
}

template <typename T>
struct FftwFree {
  void operator()(T* p) const { fftw_free(p); }
};
using RealBuffer = std::unique_ptr<double[], FftwFree<double>>;
using ComplexBuffer = std::unique_ptr<fftw_complex[], FftwFree<fftw_complex>>;

// The finite part of a PMF, zero masses dropped, for its log-MGF and tilted moments. The sums
// sum_j m_j e^(lambda L_j - top) run over a uniform grid, so e^(lambda L_j - top) is a running product
// of e^(lambda grid) in long double (no underflow or overflow where m_j e^(...) <= 1), refreshed by an
// exact exp every kRefresh points and across gaps: one multiply per point instead of one exp, with a
// relative error below (kRefresh + 4) long double ulps.
struct LogMassTable {
  static constexpr std::size_t kRefresh = 1024;
  static constexpr long double kTinyFactor = 1e-3950L;  // about e^-9095
  static constexpr long double kNegligibleExponent = -9000.0L;
  std::vector<double> mass, log_mass, loss;
  std::vector<std::int64_t> index;
  double largest_log_mass = 0.0, largest_loss = 0.0;  // in absolute value
  double grid = 0.0;

  // Zero masses between positive ones stay in the table (as terms 0): fine grids leave many isolated
  // zeros in a PMF's far tails, and each gap would cost an exact exp.
  explicit LogMassTable(const PrivacyLossPmf& pmf) : grid(pmf.grid) {
    std::size_t begin = 0, end = pmf.mass.size();
    while (begin < end && !(pmf.mass[begin] > 0.0)) ++begin;
    while (end > begin && !(pmf.mass[end - 1] > 0.0)) --end;
    for (std::size_t j = begin; j < end; ++j) {
      const bool positive = pmf.mass[j] > 0.0;
      mass.push_back(positive ? pmf.mass[j] : 0.0);
      log_mass.push_back(positive ? std::log(pmf.mass[j]) : -kInf);
      index.push_back(pmf.offset + static_cast<std::int64_t>(j));
      loss.push_back(pmf.grid * static_cast<double>(index.back()));
      if (positive) largest_log_mass = std::max(largest_log_mass, std::fabs(log_mass.back()));
      largest_loss = std::max(largest_loss, std::fabs(loss.back()));
    }
  }

  double peak(double lambda) const {
    double p = -kInf;
    for (std::size_t j = 0; j < loss.size(); ++j) p = std::max(p, log_mass[j] + lambda * loss[j]);
    return p;
  }

  // Calls visit(j, m_j e^(lambda L_j - top)) for every point.
  template <typename Visit>
  void scaled_terms(double lambda, double top, Visit&& visit) const {
    const long double step = std::exp(static_cast<long double>(lambda) * grid);
    long double factor = 0.0L;
    for (std::size_t j = 0; j < loss.size(); ++j) {
      // Also refreshed while the product is tiny: a factor that underflowed to 0 at the low end of a
      // steep tilt would otherwise stay 0 however large the later terms grow. Terms below e^-9000 of
      // the peak are taken as 0 without an exp (they are far below any rounding that matters).
      if (j % kRefresh == 0 || index[j] != index[j - 1] + 1 || factor < kTinyFactor) {
        const long double exponent = static_cast<long double>(lambda) * loss[j] - top;
        factor = exponent < kNegligibleExponent ? 0.0L : std::exp(exponent);
      } else {
        factor *= step;
      }
      visit(j, static_cast<long double>(mass[j]) * factor);
    }
  }

  // log sum_j m_j e^(lambda L_j); -inf for an empty table.
  double log_mgf(double lambda) const {
    const double top = peak(lambda);
    if (top == -kInf) return -kInf;
    long double sum = 0.0L;
    scaled_terms(lambda, top, [&](std::size_t, long double term) { sum += term; });
    return top + static_cast<double>(std::log(sum));
  }

  // A bound on the absolute rounding error of log_mgf(lambda): the peak's exponent is rounded relative
  // to its parts, each term within (kRefresh + 4) long double ulps plus the rounding of m_j and of
  // the exact exps' arguments, the sum relative to itself, the log relative to the result.
  double log_mgf_error(double lambda) const {
    return kUnit * (8.0 + 8.0 * (largest_log_mass + std::fabs(lambda) * largest_loss)) +
           static_cast<double>(kUnitLd) * (static_cast<double>(loss.size() + kRefresh) + 16.0);
  }

  // Mean and variance of the loss under the tilted measure m_j e^(lambda L_j) / M(lambda).
  void tilted_moments(double lambda, double& mean, double& variance) const {
    const double top = peak(lambda);
    long double sum = 0.0L, first = 0.0L, second = 0.0L;
    scaled_terms(lambda, top, [&](std::size_t j, long double w) {
      sum += w;
      first += w * loss[j];
      second += w * loss[j] * loss[j];
    });
    mean = static_cast<double>(first / sum);
    variance = std::max(0.0, static_cast<double>(second / sum) - mean * mean);
  }
};

std::vector<LogMassTable> tables_of(std::span<const PrivacyLossPmf> pmfs) {
  std::vector<LogMassTable> tables;
  tables.reserve(pmfs.size());
  for (const auto& pmf : pmfs) tables.emplace_back(pmf);
  return tables;
}

// Cumulant generating function of the composition and its first two derivatives at lambda.
struct Cumulants {
  long double value = 0.0L, mean = 0.0L, variance = 0.0L;
};

Cumulants cumulants(const std::vector<LogMassTable>& tables, std::span<const std::int64_t> counts, double lambda) {
  Cumulants c;
  for (std::size_t j = 0; j < tables.size(); ++j) {
    double mean, variance;
    tables[j].tilted_moments(lambda, mean, variance);
    const auto t = static_cast<long double>(counts[j]);
    c.value += t * tables[j].log_mgf(lambda);
    c.mean += t * mean;
    c.variance += t * variance;
  }
  return c;
}

void check_pmfs(std::span<const PrivacyLossPmf> pmfs, std::span<const std::int64_t> counts) {
  DPSGD_CHECK_ARG(
      !pmfs.empty() && pmfs.size() == counts.size(),
      "pmfs and counts must be non-empty and of equal size, got " << pmfs.size() << " and " << counts.size());
  const double grid = pmfs[0].grid;
  DPSGD_CHECK_ARG(std::isfinite(grid) && grid > 0.0, "pmfs[0].grid must be finite and > 0, got " << grid);
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    DPSGD_CHECK_ARG(pmfs[j].grid == grid, "pmfs[" << j << "].grid = " << pmfs[j].grid << " differs from " << grid);
    DPSGD_CHECK_ARG(!pmfs[j].mass.empty(), "pmfs[" << j << "] has no finite mass");
    DPSGD_CHECK_ARG(counts[j] >= 1, "counts[" << j << "] must be >= 1, got " << counts[j]);
    DPSGD_CHECK_ARG(pmfs[j].infinity_mass >= 0.0 && pmfs[j].infinity_mass <= 1.0,
                    "pmfs[" << j << "].infinity_mass must be in [0, 1], got " << pmfs[j].infinity_mass);
    // A pessimistic discretisation rounds every mass up, so a point holding (nearly) all the mass can
    // sit a hair above 1 (its slack is the hockey-stick error over e^h - 1); the composition handles
    // any total mass, so only clearly invalid masses are refused.
    for (std::size_t i = 0; i < pmfs[j].mass.size(); ++i) {
      DPSGD_CHECK_ARG(
          pmfs[j].mass[i] >= 0.0 && pmfs[j].mass[i] <= kMaxPointMass,
          "pmfs[" << j << "].mass[" << i << "] must be in [0, " << kMaxPointMass << "], got " << pmfs[j].mass[i]);
    }
  }
}

// The log-MGFs of the steps at the tilt (the normalisation of the tilted inputs) and their sum over
// the composition, log_scale = sum_j T_j log M_j(tilt), with bounds on their rounding.
struct Normalisation {
  std::vector<double> log_norm, norm_error;
  long double log_scale = 0.0L, log_scale_magnitude = 0.0L;
  bool no_finite_mass = false;
};

// The tilted inputs then sum to 1 within e^(+-norm_error): the FFT's error bounds, relative to that
// sum, and the Chernoff bounds take it into account.
Normalisation normalise(const std::vector<LogMassTable>& tables, std::span<const std::int64_t> counts, double tilt) {
  Normalisation n;
  for (std::size_t j = 0; j < tables.size(); ++j) {
    n.log_norm.push_back(tables[j].log_mgf(tilt));
    n.norm_error.push_back(tables[j].log_mgf_error(tilt));
    if (n.log_norm.back() == -kInf) n.no_finite_mass = true;
    n.log_scale += static_cast<long double>(counts[j]) * n.log_norm.back();
    n.log_scale_magnitude += static_cast<long double>(counts[j]) * std::fabs(n.log_norm.back());
  }
  return n;
}

// The window from Chernoff bounds, Pr[S > u] <= exp(K(mu) - mu u) for any mu > 0 (K the cumulant
// generating function relative to the tilt; any mu is valid, a geometric grid comes within a small
// factor of the best). Below, the window keeps all but tail_mass of the tilted composition. Above,
// it reaches to where the UNTILTED mass beyond is at most infinity_budget (the same bound at order
// tilt + mu: exp(log_scale + K(mu) - (tilt + mu) u)), and at least to where the tilted mass beyond
// is 1e-6. The untilted mass above the window is counted as infinite loss. The circular FFT wraps
// whatever lies outside around: from below onto the top (higher losses: pessimistic), from above
// onto the bottom (an extra copy of mass already counted at infinity).
struct Window {
  double lower = -kInf, upper = kInf, upper_untilted = kInf;
  double cut_order = 0.0, cut_log_mgf = 0.0;  // the bound that places upper_untilted
};

// mu_ratio: the geometric grid of mu (4 for the window a composition uses, coarser for estimates).
Window chernoff_window(const std::vector<LogMassTable>& tables, std::span<const std::int64_t> counts, double tilt,
                       const Normalisation& norms, double tail_mass, double infinity_budget, double mu_ratio = 4.0) {
  const auto relative_cumulant = [&](double mu, double& error) {
    long double k = 0.0L;
    error = 0.0;
    for (std::size_t j = 0; j < tables.size(); ++j) {
      const auto t = static_cast<long double>(counts[j]);
      k += t * (tables[j].log_mgf(tilt + mu) - norms.log_norm[j]);
      error += static_cast<double>(t) * (tables[j].log_mgf_error(tilt + mu) + norms.norm_error[j]);
    }
    return static_cast<double>(k);
  };
  const double log_tail = std::log(tail_mass), log_budget = std::log(infinity_budget);
  const double log_inside = std::log(1e-6);
  const double log_scale_error = static_cast<double>(8.0L * kUnitLd * norms.log_scale_magnitude);
  Window w;
  double upper_tilted = kInf;
  // Every mu gives a valid bound. Each bound is the slope from a point below a convex curve (the
  // log-MGF) to that curve, so it improves up to a tangent and then worsens: a direction is no longer
  // evaluated after two rounds without improvement (rounding may make this stop early, which only
  // widens the window). Each evaluation is a pass over every point.
  int stale_up = 0, stale_down = 0;
  for (double mu = 1e-3; mu <= 1e5 && (stale_up < 2 || stale_down < 2); mu *= mu_ratio) {
    if (stale_up < 2) {
      double error_up;
      const double k_up = relative_cumulant(mu, error_up);
      bool improved = false;
      if (std::isfinite(k_up)) {
        const double tilted = (k_up - log_inside) / mu;
        if (tilted < upper_tilted) upper_tilted = tilted, improved = true;
        const double log_mgf = static_cast<double>(norms.log_scale) + k_up + error_up + log_scale_error;
        const double cut = (log_mgf - log_budget) / (tilt + mu);
        if (cut < w.upper_untilted) {
          w.upper_untilted = cut;
          w.cut_order = tilt + mu;
          w.cut_log_mgf = log_mgf;
          improved = true;
        }
      }
      stale_up = improved ? 0 : stale_up + 1;
    }
    if (stale_down < 2) {
      double error_down;
      const double k_down = relative_cumulant(-mu, error_down);
      const double lower = std::isfinite(k_down) ? -(k_down - log_tail) / mu : -kInf;
      if (lower > w.lower) {
        w.lower = lower;
        stale_down = 0;
      } else {
        ++stale_down;
      }
    }
  }
  w.upper = std::max(w.upper_untilted, upper_tilted);
  return w;
}

}  // namespace

double TiltedComposition::mass_bound(std::size_t m, bool with_error) const {
  // Everything below the window, at most all the mass, placed at its top: an upper bound for every
  // query at epsilon below the window, and no contribution above it.
  if (m == 0) return 1.0;
  const double c = std::max(coefficients[m], 0.0) + (with_error ? coefficient_error : 0.0);
  if (!(c > 0.0)) return 0.0;
  const double loss = grid * static_cast<double>(first + static_cast<std::int64_t>(m));
  const double x = std::log(c) + log_scale + (with_error ? log_slack : 0.0) - tilt * loss;
  return x >= 0.0 ? 1.0 : std::exp(x);
}

PrivacyLossPmf TiltedComposition::pessimistic(bool with_error) const {
  PrivacyLossPmf pmf;
  pmf.grid = grid;
  pmf.offset = first;
  pmf.infinity_mass = infinity_mass;
  pmf.mass.resize(coefficients.size());
  for (std::size_t m = 0; m < coefficients.size(); ++m) pmf.mass[m] = mass_bound(m, with_error);
  return pmf;
}

double TiltedComposition::delta_for_epsilon(double epsilon, bool with_error) const {
  return detail::delta_for_epsilon(grid, first, coefficients.size(), infinity_mass, epsilon,
                                   [&](std::size_t m) { return static_cast<long double>(mass_bound(m, with_error)); });
}

double TiltedComposition::epsilon_for_delta(double delta, bool with_error) const {
  return detail::epsilon_for_delta(grid, first, coefficients.size(), infinity_mass, delta,
                                   [&](std::size_t m) { return static_cast<long double>(mass_bound(m, with_error)); });
}

struct PldComposer::Tables {
  std::vector<LogMassTable> tables;
};

PldComposer::PldComposer(std::vector<PrivacyLossPmf> pmfs, std::vector<std::int64_t> counts)
    : pmfs_(std::move(pmfs)), counts_(std::move(counts)) {
  check_pmfs(pmfs_, counts_);
  tables_ = std::make_shared<Tables>(Tables{tables_of(pmfs_)});
}

TiltedComposition PldComposer::compose(double tilt, double tail_mass, double infinity_budget,
                                       std::int64_t max_points) const {
  const std::span<const PrivacyLossPmf> pmfs(pmfs_);
  const std::span<const std::int64_t> counts(counts_);
  DPSGD_CHECK_ARG(std::isfinite(tail_mass) && tail_mass > 0.0 && tail_mass < 1e-3,
                  "tail_mass must be in (0, 1e-3), got " << tail_mass);
  DPSGD_CHECK_ARG(std::isfinite(infinity_budget) && infinity_budget > 0.0 && infinity_budget < 1.0,
                  "infinity_budget must be in (0, 1), got " << infinity_budget);
  DPSGD_CHECK_ARG(std::isfinite(tilt) && tilt >= 0.0, "tilt must be finite and >= 0, got " << tilt);
  DPSGD_CHECK_ARG(max_points >= 4, "max_points must be >= 4, got " << max_points);
  const double grid = pmfs[0].grid;
  TiltedComposition result;
  result.grid = grid;
  result.tilt = tilt;

  // Infinity mass of the steps: 1 - prod (1 - iota_j)^T_j.
  long double log_finite = 0.0L;
  for (std::size_t j = 0; j < pmfs.size(); ++j)
    log_finite += static_cast<long double>(counts[j]) * std::log1p(-static_cast<long double>(pmfs[j].infinity_mass));
  const long double steps_infinity = -std::expm1(log_finite);

  const std::vector<LogMassTable>& tables = tables_->tables;
  const Normalisation norms = normalise(tables, counts, tilt);
  if (norms.no_finite_mass) {
    // A step with no finite mass: the composition is all infinity.
    result.first = 0;
    result.coefficients.assign(1, 0.0);
    result.infinity_mass = 1.0;
    return result;
  }
  const std::vector<double>& log_norm = norms.log_norm;
  const long double log_scale = norms.log_scale, log_scale_magnitude = norms.log_scale_magnitude;
  const Window window = chernoff_window(tables, counts, tilt, norms, tail_mass, infinity_budget);
  const double lower = window.lower, upper = window.upper, upper_untilted = window.upper_untilted;
  const double cut_order = window.cut_order, cut_log_mgf = window.cut_log_mgf;
  long double min_index = 0.0L, max_index = 0.0L;
  std::size_t largest = 1;
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    const auto t = static_cast<long double>(counts[j]);
    min_index += t * static_cast<long double>(pmfs[j].offset);
    max_index += t * static_cast<long double>(pmfs[j].offset + static_cast<std::int64_t>(pmfs[j].mass.size()) - 1);
    largest = std::max(largest, pmfs[j].mass.size());
  }
  long double low = min_index, high = max_index;
  if (std::isfinite(lower)) low = std::max(low, std::floor(static_cast<long double>(lower) / grid));
  if (std::isfinite(upper)) high = std::min(high, std::ceil(static_cast<long double>(upper) / grid));
  high = std::max(high, low);
  const long double width = std::max(high - low + 1.0L, static_cast<long double>(largest));
  constexpr long double kIndexLimit = 4.0e18L;
  if (!(width <= static_cast<long double>(max_points)) || std::fabs(low) > kIndexLimit ||
      std::fabs(high) > kIndexLimit || std::fabs(min_index) > kIndexLimit) {
    std::ostringstream message;
    message.precision(6);
    message << "dpsgd::compose_pmfs: the composition needs " << static_cast<double>(width)
            << " grid points, more than max_points = " << max_points << "; use a coarser grid";
    throw GridTooFine(message.str());
  }
  std::size_t n = 4;
  while (static_cast<long double>(n) < width) n *= 2;
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(n) <= std::max<std::int64_t>(max_points, 4) * 2,
                  "the composition needs " << n << " grid points");
  result.first = static_cast<std::int64_t>(low);
  // Circular index of loss index first + m: (first - min_index + m) mod n.
  const auto base = static_cast<std::size_t>(
      std::fmod(std::fmod(static_cast<long double>(result.first) - min_index, static_cast<long double>(n)) + n,
                static_cast<long double>(n)));

  const FftPlans& plans = plans_for(n);
  const std::size_t bins = n / 2 + 1;
  RealBuffer buffer(fftw_alloc_real(n));
  ComplexBuffer spectrum(fftw_alloc_complex(bins));
  std::vector<std::complex<double>> product(bins, std::complex<double>(1.0, 0.0));
  // Per frequency, a bound on |product| and on its error. The inverse transform averages over
  // frequencies, so the error of a coefficient is the average of these, not their maximum: where
  // |z|^T has decayed (most frequencies of a wide distribution) the FFT's round-off has too.
  std::vector<double> bound(bins, 1.0), error(bins, 0.0);
  const double log2n = std::log2(static_cast<double>(n));
  const double fft_error = kFftErrorConstant * (log2n + 2.0) * kUnit;
  long double log_input_slack = 0.0L;
  for (std::size_t j = 0; j < pmfs.size(); ++j) {
    const PrivacyLossPmf& pmf = pmfs[j];
    std::fill(buffer.get(), buffer.get() + n, 0.0);
    // Each tilted input is within a relative eta of its exact value (the rounding of its exponent,
    // relative to the exponent's parts), and they sum to 1 within e^(norm_error).
    double largest_exponent = 0.0;
    for (std::size_t i = 0; i < pmf.mass.size(); ++i) {
      if (!(pmf.mass[i] > 0.0)) continue;
      const double loss = grid * static_cast<double>(pmf.offset + static_cast<std::int64_t>(i));
      const double log_mass = std::log(pmf.mass[i]);
      buffer[i] = std::exp(log_mass + tilt * loss - log_norm[j]);
      largest_exponent = std::max(largest_exponent, std::fabs(log_mass) + std::fabs(tilt * loss));
    }
    const double eta = 4.0 * kUnit * (largest_exponent + std::fabs(log_norm[j]) + 4.0);
    log_input_slack += static_cast<long double>(counts[j]) * 1.01L * eta;
    const double input_error = fft_error * std::exp(norms.norm_error[j]) * (1.0 + eta);
    fftw_execute_dft_r2c(plans.forward, buffer.get(), spectrum.get());
    const std::int64_t t = counts[j];
    const auto tt = static_cast<long double>(t);
    for (std::size_t f = 0; f < bins; ++f) {
      std::complex<double> z(spectrum[f][0], spectrum[f][1]);
      const double magnitude = std::abs(z);
      // |z~ - z| <= input_error, so |z|, |z~| <= r = |z~| + input_error and |z~^T - z^T| <= T r^(T-1)
      // input_error; the polar form's log, exp, atan2 and sincos add about 8 T u relative.
      const double r = magnitude + input_error;
      double power_bound, power_error;
      if (t == 1) {
        power_bound = r;
        power_error = input_error;
      } else if (const double log_r = std::log(r); static_cast<double>(tt * log_r) < -800.0) {
        // |z|^T and everything that bounds it are below the smallest double: the bin is 0.
        z = 0.0;
        power_bound = 0.0;
        const double below = static_cast<double>((tt - 1.0L) * log_r);
        power_error = (below < -800.0 ? 0.0 : static_cast<double>(tt) * std::exp(below) * input_error) +
                      std::numeric_limits<double>::denorm_min();
      } else if (t < kSquaringLimit) {
        // z^T by repeated squaring: at most 2 log2(T) complex products, each rounded to a few ulps of
        // its magnitude (<= r^T times the remaining factors' bound, all <= 1 + error).
        power_bound = std::exp(static_cast<double>(tt * log_r));
        power_error = static_cast<double>(tt) * std::exp(static_cast<double>((tt - 1.0L) * log_r)) * input_error +
                      8.0 * kUnit * (2.0 * std::log2(static_cast<double>(t)) + 2.0) * power_bound;
        std::complex<double> power(1.0, 0.0), square = z;
        for (std::int64_t e = t; e > 0; e >>= 1) {
          if (e & 1) power *= square;
          if (e > 1) square *= square;
        }
        z = power;
      } else {
        power_bound = std::exp(static_cast<double>(tt * log_r));
        power_error = static_cast<double>(tt) *
                      (std::exp(static_cast<double>((tt - 1.0L) * log_r)) * input_error + 8.0 * kUnit * power_bound);
        if (magnitude == 0.0) {
          z = 0.0;
        } else {
          // z^T through its polar form: T log|z| and T arg z, the angle reduced in long double.
          const long double angle = std::fmod(tt * static_cast<long double>(std::arg(z)), kTwoPi);
          z = std::polar(std::exp(static_cast<double>(tt * std::log(magnitude))), static_cast<double>(angle));
        }
      }
      product[f] *= z;
      error[f] = error[f] * power_bound + bound[f] * power_error + 4.0 * kUnit * bound[f] * power_bound;
      bound[f] *= power_bound;
    }
  }
  for (std::size_t f = 0; f < bins; ++f) {
    spectrum[f][0] = product[f].real();
    spectrum[f][1] = product[f].imag();
  }
  fftw_execute_dft_c2r(plans.inverse, spectrum.get(), buffer.get());
  // Coefficient m is (1/n) sum over the full spectrum (bins 1 .. n/2 - 1 twice, by symmetry): its
  // error is at most the weighted average of the bins' errors, plus the inverse transform's own
  // round-off relative to the average magnitude (the division by n is exact for a power of two).
  const auto average = [&](const std::vector<double>& v) {
    long double sum = v[0] + v[bins - 1];
    for (std::size_t f = 1; f + 1 < bins; ++f) sum += 2.0L * v[f];
    return static_cast<double>(sum / static_cast<long double>(n));
  };
  result.coefficient_error = (average(error) + (fft_error + 2.0 * kUnit) * average(bound)) * (1.0 + 1e-6) +
                             std::numeric_limits<double>::denorm_min();
  result.coefficients.assign(n, 0.0);
  const double scale = 1.0 / static_cast<double>(n);
  long double total = 0.0L;
  for (std::size_t m = 0; m < n; ++m) {
    const double c = buffer[(base + m) % n] * scale;
    result.coefficients[m] = c;
    total += c;
  }
  result.tilted_total = static_cast<double>(total);
  result.fft_points = n;
  result.window_points = static_cast<double>(width);
  result.log_scale = static_cast<double>(log_scale);
  // Untilting multiplies by exp(log_scale - tilt L): the exponent is rounded relative to its parts.
  const double largest_window_loss =
      grid * std::max(std::fabs(static_cast<double>(result.first)), std::fabs(static_cast<double>(high)));
  result.log_slack = static_cast<double>(log_input_slack + 8.0L * kUnitLd * log_scale_magnitude) +
                     8.0 * kUnit * (std::fabs(result.log_scale) + tilt * largest_window_loss + 2.0);
  // The window reaches past upper_untilted only so that the tilted tail does not wrap around onto it.
  // Above upper_untilted the untilted mass is at most the Chernoff bound that placed it: those points
  // are dropped and the bound (times the rounding allowance) counted as infinite loss instead, which
  // is pessimistic and spares the queries a walk through them.
  long double top_index = high;
  if (std::isfinite(upper_untilted)) {
    top_index = std::min(top_index, std::max(static_cast<long double>(result.first),
                                             std::ceil(static_cast<long double>(upper_untilted) / grid)));
    result.coefficients.resize(static_cast<std::size_t>(top_index - static_cast<long double>(result.first)) + 1);
  }
  long double infinity = steps_infinity * (1.0L + 16.0L * kUnitLd) + 1e-300L;
  if (std::isfinite(upper)) {
    // Every dropped or cut-off loss is at least (top_index + 1) grid; the bound is taken at top_index
    // grid (or at upper_untilted where that is higher), slightly pessimistic.
    const long double top = static_cast<long double>(grid) * top_index;
    infinity += std::exp(static_cast<long double>(cut_log_mgf + result.log_slack) -
                         static_cast<long double>(cut_order) * std::max<long double>(top, upper_untilted));
  }
  result.infinity_mass = static_cast<double>(std::min(1.0L, infinity));
  if (result.infinity_mass < 1.0) result.infinity_mass = std::nextafter(result.infinity_mass, 2.0);
  return result;
}

double PldComposer::saddlepoint_tilt(double target_loss, double max_tilt) const {
  const auto mean_at = [&](double lambda) {
    return static_cast<double>(cumulants(tables_->tables, counts_, lambda).mean);
  };
  if (!(mean_at(0.0) < target_loss)) return 0.0;
  double lo = 0.0, hi = 1.0;
  while (hi < max_tilt && mean_at(hi) < target_loss) {
    lo = hi;
    hi *= 2.0;
  }
  hi = std::min(hi, max_tilt);
  if (mean_at(hi) < target_loss) return hi;
  for (int it = 0; it < 60 && hi - lo > 1e-4 * hi; ++it) {  // a tilt needs no more precision
    const double mid = 0.5 * (lo + hi);
    (mean_at(mid) < target_loss ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double PldComposer::saddlepoint_tilt_for_delta(double delta, double max_tilt) const {
  const std::vector<LogMassTable>& tables = tables_->tables;
  const std::span<const std::int64_t> counts(counts_);
  // At the tilt lambda, with K'(lambda) = eps, delta(eps) ~ e^(K - lambda K') / (lambda (lambda + 1)
  // sqrt(2 pi K'')) (the saddlepoint approximation of E[(1 - e^(eps - L))+]). The log of that
  // decreases in lambda: bisect on log lambda for log delta.
  const double log_delta = std::log(delta);
  const auto excess = [&](double lambda) {
    const Cumulants c = cumulants(tables, counts, lambda);
    const long double v = std::max(c.variance, 1e-300L);
    return static_cast<double>(c.value - lambda * c.mean -
                               std::log(lambda * (lambda + 1.0) * std::sqrt(2.0L * std::numbers::pi_v<Real> * v))) -
           log_delta;
  };
  double lo = 1e-8, hi = 1.0;
  if (excess(lo) <= 0.0) return 0.0;
  while (hi < max_tilt && excess(hi) > 0.0) {
    lo = hi;
    hi *= 2.0;
  }
  hi = std::min(hi, max_tilt);
  if (excess(hi) > 0.0) return hi;
  for (int it = 0; it < 60 && hi / lo > 1.0 + 1e-3; ++it) {
    const double mid = std::sqrt(lo * hi);
    (excess(mid) > 0.0 ? lo : hi) = mid;
  }
  return std::sqrt(lo * hi);
}

double PldComposer::tilted_mean(double tilt) const {
  return static_cast<double>(cumulants(tables_->tables, counts_, tilt).mean);
}

double PldComposer::economical_tilt(double saddle_tilt, double target_loss, double target_delta, double tail_mass,
                                    double infinity_budget, double gap_limit, double fft_grid) const {
  const std::vector<LogMassTable>& tables = tables_->tables;
  const std::span<const std::int64_t> counts(counts_);
  const double grid = fft_grid;
  double total_steps = 0.0;
  for (const std::int64_t t : counts) total_steps += static_cast<double>(t);
  // Smaller tilts give narrower windows (down to the untilted distribution's) and larger predicted
  // costs: halve the tilt until the prediction exceeds the limit or the window stops shrinking.
  double best = saddle_tilt, best_width = kInf;
  for (int halvings = 0; halvings <= 6; ++halvings) {
    const double tilt = halvings == 6 ? 0.0 : std::ldexp(saddle_tilt, -halvings);
    const Normalisation norms = normalise(tables, counts, tilt);
    if (norms.no_finite_mass) return saddle_tilt;
    const Window w = chernoff_window(tables, counts, tilt, norms, tail_mass, infinity_budget, 16.0);
    const double width = w.upper - w.lower;
    if (!(width < 0.9 * best_width)) break;
    // The error bound per coefficient is about T * (FFT error) times the fraction of frequencies where
    // the composition's characteristic function has not decayed, ~ grid / (2.5 sd); it counts for
    // every grid point above the target, weighted by the untilting e^(log_scale - tilt L).
    const Cumulants c = cumulants(tables, counts, tilt);
    const double sd = std::sqrt(std::max(static_cast<double>(c.variance), 1e-300));
    const double points = std::max(width / grid, 4.0);
    const double fft_error = kFftErrorConstant * (std::log2(points) + 3.0) * kUnit;
    const double error = total_steps * fft_error * std::min(1.0, grid / (2.5 * sd)) + fft_error;
    const double above = std::max(w.upper - target_loss, grid) / grid;
    const double weight = tilt * grid > 1e-9 ? std::min(above, 1.0 / -std::expm1(-tilt * grid)) : above;
    const double log_gap = std::log(error) + static_cast<double>(norms.log_scale) - tilt * target_loss +
                           std::log(weight) - std::log(target_delta);
    if (!(log_gap <= std::log(gap_limit))) break;
    best = tilt;
    best_width = width;
  }
  return best;
}

}  // namespace detail

PrivacyLossPmf compose_pmfs(std::span<const PrivacyLossPmf> pmfs, std::span<const std::int64_t> counts,
                            const CompositionOptions& options) {
  const detail::PldComposer composer(std::vector<PrivacyLossPmf>(pmfs.begin(), pmfs.end()),
                                     std::vector<std::int64_t>(counts.begin(), counts.end()));
  return composer.compose(options.tilt, options.tail_mass, options.tail_mass, options.max_points).pessimistic();
}

}  // namespace dpsgd

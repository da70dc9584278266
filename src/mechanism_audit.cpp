// The white-box mechanism audit: noise scale, dense and ghost clipping, and the accounting of truncation.
#include "dpsgd/audit/mechanism_audit.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <sstream>

#include "dpsgd/accounting/epsilon_delta.hpp"
#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/dp_sgd.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace dpsgd::audit {
namespace {

constexpr const char* kBugNames[] = {"none", "half-noise", "double-clip", "no-truncation-charge", "gram-cancellation"};
// Checks whose outcome is random (the others are deterministic).
constexpr int kStatisticalChecks = 2;

// The upper alpha quantile of the standard normal (bisection on erfc; alpha in (0, 1/2)).
double normal_upper_quantile(double alpha) {
  double lo = 0.0, hi = 40.0;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > alpha ? lo : hi) = mid;
  }
  return hi;
}

std::string describe(double value) {
  std::ostringstream out;
  out.precision(6);
  out << value;
  return out.str();
}

// Noise: one step of DpSgd on a zero clipped sum of 2^20 coordinates (expected batch size 1, so the
// release is the noise itself). sum(z^2) / (n (sigma C)^2) has mean 1 and standard deviation
// sqrt(2 / n) for the claimed sigma; a normal approximation (n = 2^20) sets the two-sided limit.
MechanismAuditCheck noise_check(const MechanismAuditConfig& c, double alpha) {
  constexpr std::size_t kCoordinates = std::size_t{1} << 20;
  DpSgdConfig config;
  config.noise_multiplier = c.bug == InjectedBug::kHalfNoise ? c.noise_multiplier / 2.0 : c.noise_multiplier;
  config.sampling_rate = 0.01;
  config.expected_batch_size = 1.0;
  config.clip = ClipConfig::flat(c.clip_norm);
  DpSgd<double> step(config, std::make_unique<Sgd<double>>(1.0), c.seed);
  std::vector<double> params(kCoordinates, 0.0), release(kCoordinates, 0.0);
  step.step(params, release);
  const double scale = c.noise_multiplier * c.clip_norm;
  long double total = 0.0L;
  for (const double z : release) total += static_cast<long double>(z / scale) * (z / scale);
  MechanismAuditCheck check;
  check.name = "noise variance / (sigma C)^2";
  check.statistic = static_cast<double>(total / static_cast<long double>(kCoordinates));
  check.limit = normal_upper_quantile(alpha / 2.0) * std::sqrt(2.0 / static_cast<double>(kCoordinates));
  check.passed = std::fabs(check.statistic - 1.0) <= check.limit;
  check.detail = "2^20 coordinates of one step; must be 1 within +-" + describe(check.limit);
  return check;
}

// Dense clipping: a canary of norm 20 C on coordinate 0 among 200 examples whose gradients (norms
// around 2 C) use only coordinates 1..8; Poisson sampling at q = 1/2 for 4000 steps through
// clip_and_accumulate and DpSgd (expected batch size 1: the release is the noisy clipped sum). When
// the canary is sampled, coordinate 0 of the release is its clipped contribution plus N(0, (sigma C)^2):
// the mean over those steps must not exceed C by more than the one-sided sampling limit.
MechanismAuditCheck dense_clip_check(const MechanismAuditConfig& c, double alpha) {
  constexpr std::int64_t kOrdinary = 200, kWidth = 9, kSteps = 4000;
  constexpr double kRate = 0.5;
  const std::int64_t n = kOrdinary + 1;
  std::mt19937_64 rng(c.seed + 11);
  std::normal_distribution<double> normal(0.0, 2.0 * c.clip_norm / std::sqrt(8.0));
  RowMajorMatrix<double> examples = RowMajorMatrix<double>::Zero(n, kWidth);
  for (std::int64_t i = 0; i < kOrdinary; ++i) {
    for (std::int64_t k = 1; k < kWidth; ++k) examples(i, k) = normal(rng);
  }
  examples(kOrdinary, 0) = 20.0 * c.clip_norm;
  PoissonSampler sampler(n, kRate, n, c.seed + 12);
  DpSgdConfig config;
  config.noise_multiplier = c.noise_multiplier;
  config.sampling_rate = kRate;
  config.expected_batch_size = 1.0;
  config.clip = ClipConfig::flat(c.clip_norm);
  const ClipConfig clipping = ClipConfig::flat(c.bug == InjectedBug::kDoubleClip ? 2.0 * c.clip_norm : c.clip_norm);
  DpSgd<double> step(config, std::make_unique<Sgd<double>>(1.0), c.seed + 13);
  std::vector<double> params(kWidth, 0.0), release(kWidth);
  RowMajorMatrix<double> rows;
  long double sum = 0.0L;
  std::int64_t present = 0;
  for (std::int64_t t = 0; t < kSteps; ++t) {
    const Batch batch = sampler.sample(step.next_step());
    rows.setZero(static_cast<Eigen::Index>(batch.indices.size()), kWidth);
    bool canary = false;
    for (std::size_t slot = 0; slot < batch.indices.size(); ++slot) {
      const std::int64_t e = batch.indices[slot];
      if (e == Batch::kPaddingIndex) continue;
      rows.row(static_cast<Eigen::Index>(slot)) = examples.row(e);
      canary = canary || e == kOrdinary;
    }
    std::fill(release.begin(), release.end(), 0.0);
    clip_and_accumulate<double>(rows, batch.mask, clipping, release);
    step.step(params, release);
    if (canary) {
      sum += release[0];
      ++present;
    }
  }
  MechanismAuditCheck check;
  check.name = "dense clipped contribution / C";
  const double mean = static_cast<double>(sum / static_cast<long double>(std::max<std::int64_t>(present, 1)));
  check.statistic = mean / c.clip_norm;
  check.limit = 1.0 + normal_upper_quantile(alpha) * c.noise_multiplier /
                          std::sqrt(static_cast<double>(std::max<std::int64_t>(present, 1)));
  check.passed = present > 0 && check.statistic <= check.limit;
  check.detail = "canary of norm 20 C, mean release over the " + std::to_string(present) + " steps that sampled it";
  return check;
}

// One example of a sequence layer whose per-position gradients cancel: a_t = 30 + 1e-3 noise, dy_t
// of alternating signs (summing to 0) plus 1e-6 noise, scaled so that the exact gradient has norm 6 C.
void cancelling_example(std::mt19937_64& rng, double clip, RowMajorMatrix<float>& a, RowMajorMatrix<float>& dy) {
  constexpr std::int64_t kPositions = 196, kIn = 48, kOut = 16;
  std::normal_distribution<double> normal;
  a.resize(kPositions, kIn);
  dy.resize(kPositions, kOut);
  std::vector<double> g(kOut);
  for (double& v : g) v = normal(rng);
  for (std::int64_t p = 0; p < kPositions; ++p) {
    for (std::int64_t k = 0; k < kIn; ++k) a(p, k) = static_cast<float>(30.0 + 1e-3 * normal(rng));
    for (std::int64_t k = 0; k < kOut; ++k)
      dy(p, k) = static_cast<float>((p % 2 == 0 ? 1.0 : -1.0) * g[static_cast<std::size_t>(k)] + 1e-6 * normal(rng));
  }
  using Ld = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;
  const Ld exact = dy.cast<long double>().transpose() * a.cast<long double>();
  dy *= static_cast<float>(6.0 * clip / std::sqrt(static_cast<double>(exact.squaredNorm())));
}

// The pre-fix ghost norm, planted by kGramCancellation: Gram products in float, their inner product
// in double, no account of rounding.
double unbounded_float_gram(const RowMajorMatrix<float>& a, const RowMajorMatrix<float>& dy) {
  using M = Eigen::MatrixXf;
  const M gram_a = M(a) * M(a).transpose();
  const M gram_g = M(dy) * M(dy).transpose();
  return std::max(0.0, gram_a.cast<double>().cwiseProduct(gram_g.cast<double>()).sum());
}

// Ghost clipping: eight draws of the cancelling example through accumulate_linear_squared_norms (Gram
// route), compute_clip_factors and accumulate_linear_clipped_gradient; the largest norm of what one
// adds must be at most C (1 + 1e-4). No noise: deterministic.
MechanismAuditCheck ghost_clip_check(const MechanismAuditConfig& c) {
  std::mt19937_64 rng(c.seed + 21);
  const ClipConfig config = ClipConfig::flat(c.clip_norm);
  double worst = 0.0;
  for (int draw = 0; draw < 8; ++draw) {
    RowMajorMatrix<float> a, dy;
    cancelling_example(rng, c.clip_norm, a, dy);
    SquaredNorms norms = SquaredNorms::Zero(1, 1);
    if (c.bug == InjectedBug::kGramCancellation) {
      norms(0, 0) = unbounded_float_gram(a, dy);
    } else {
      accumulate_linear_squared_norms<float>(a, dy, 1, false, norms, 0, GhostNormMethod::kGram);
    }
    const ClipFactors factors = compute_clip_factors(norms, std::vector<std::uint8_t>{1}, config);
    RowMajorMatrix<float> w = RowMajorMatrix<float>::Zero(dy.cols(), a.cols());
    accumulate_linear_clipped_gradient<float>(a, dy, 1, factors.factors, 0, w, {});
    worst = std::max(worst, static_cast<double>(w.cast<long double>().norm()) / c.clip_norm);
  }
  MechanismAuditCheck check;
  check.name = "ghost clipped contribution / C";
  check.statistic = worst;
  check.limit = 1.0 + 1e-4;
  check.passed = worst <= check.limit;
  check.detail = "largest of 8 examples with 196 cancelling positions (exact norm 6 C), Gram route";
  return check;
}

// Accounting: 500 steps of a Poisson sampler truncated to 165 slots (N = 10^4, q = 1/100: a step
// truncates with probability about 8e-10, which raises epsilon at delta = 1e-5 by 2%) recorded in a
// PrivacyLedger through DpSgd: the ledger's epsilon must be at least compute_epsilon for that
// sampler, truncation charge included.
MechanismAuditCheck accounting_check(const MechanismAuditConfig& c) {
  constexpr std::int64_t kDataset = 10000, kCapacity = 165, kSteps = 500;
  constexpr double kRate = 0.01;
  PoissonSampler sampler(kDataset, kRate, kCapacity, c.seed + 31);
  DpSgdConfig config;
  config.noise_multiplier = c.noise_multiplier;
  config.sampling_rate = kRate;
  config.expected_batch_size = sampler.expected_batch_size();
  config.clip = ClipConfig::flat(c.clip_norm);
  if (c.bug != InjectedBug::kNoTruncationCharge) {
    config.dataset_size = kDataset;
    config.capacity = kCapacity;
  }
  PrivacyLedger ledger;
  DpSgd<double> step(config, std::make_unique<Sgd<double>>(1.0), c.seed + 32, &ledger);
  std::vector<double> params(1, 0.0), release(1);
  for (std::int64_t t = 0; t < kSteps; ++t) {
    static_cast<void>(sampler.sample(step.next_step()));
    release[0] = 0.0;
    step.step(params, release);
  }
  const TrainingPhase run{kRate, c.noise_multiplier, kSteps, kDataset, kCapacity};
  const double required = compute_epsilon(std::span<const TrainingPhase>(&run, 1), c.delta);
  MechanismAuditCheck check;
  check.name = "claimed epsilon / epsilon of the sampler used";
  check.statistic = ledger.epsilon(c.delta) / required;
  check.limit = 1.0 - 1e-9;
  check.passed = check.statistic >= check.limit;
  check.detail = "ledger " + describe(ledger.epsilon(c.delta)) + " against " + describe(required) +
                 " for truncation to 165 of 10^4 at q = 0.01";
  return check;
}

}  // namespace

std::string to_string(InjectedBug bug) {
  const int k = static_cast<int>(bug);
  return k >= 0 && k < 5 ? kBugNames[k] : "unknown";
}

InjectedBug parse_injected_bug(const std::string& name) {
  for (int k = 0; k < 5; ++k) {
    if (name == kBugNames[k]) return static_cast<InjectedBug>(k);
  }
  DPSGD_CHECK_ARG(false, "bug must be none, half-noise, double-clip, no-truncation-charge or gram-cancellation, got \""
                             << name << "\"");
  return InjectedBug::kNone;
}

bool MechanismAuditResult::passed() const {
  return std::all_of(checks.begin(), checks.end(), [](const MechanismAuditCheck& c) { return c.passed; });
}

MechanismAuditResult run_mechanism_audit(const MechanismAuditConfig& config) {
  DPSGD_CHECK_ARG(std::isfinite(config.noise_multiplier) && config.noise_multiplier > 0.0,
                  "noise_multiplier must be finite and > 0, got " << config.noise_multiplier);
  DPSGD_CHECK_ARG(std::isfinite(config.clip_norm) && config.clip_norm >= 1e-20,
                  "clip_norm must be finite and >= 1e-20, got " << config.clip_norm);
  DPSGD_CHECK_ARG(config.delta > 0.0 && config.delta < 1.0, "delta must be in (0, 1), got " << config.delta);
  DPSGD_CHECK_ARG(config.false_failure > 0.0 && config.false_failure < 0.5,
                  "false_failure must be in (0, 0.5), got " << config.false_failure);
  DPSGD_CHECK_ARG(static_cast<int>(config.bug) >= 0 && static_cast<int>(config.bug) < 5,
                  "bug must be an InjectedBug, got " << static_cast<int>(config.bug));
  const double alpha = config.false_failure / kStatisticalChecks;
  MechanismAuditResult result;
  result.checks.push_back(noise_check(config, alpha));
  result.checks.push_back(dense_clip_check(config, alpha));
  result.checks.push_back(ghost_clip_check(config));
  result.checks.push_back(accounting_check(config));
  return result;
}

}  // namespace dpsgd::audit

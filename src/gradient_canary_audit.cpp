// The white-box gradient-canary audit of the DpSgd step driver.
#include "dpsgd/audit/gradient_canary_audit.hpp"

#include <cmath>
#include <memory>
#include <random>

#include "dpsgd/accounting/epsilon_delta.hpp"
#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/dp_sgd.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace dpsgd::audit {
namespace {

// Coordinates the ordinary examples use, after the canaries' one-hot coordinates.
constexpr std::int64_t kOrdinaryCoordinates = 16;

// log(e^a + e^b) without overflow.
double log_add(double a, double b) {
  const double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

}  // namespace

GradientCanaryAuditResult run_gradient_canary_audit(const GradientCanaryAuditConfig& c) {
  DPSGD_CHECK_ARG(
      std::isfinite(c.noise_multiplier) && c.noise_multiplier > 0.0,
      "noise_multiplier must be finite and > 0 (it is the claim being audited), got " << c.noise_multiplier);
  DPSGD_CHECK_ARG(std::isfinite(c.sampling_rate) && c.sampling_rate > 0.0 && c.sampling_rate <= 1.0,
                  "sampling_rate must be in (0, 1], got " << c.sampling_rate);
  DPSGD_CHECK_ARG(c.steps >= 1 && c.steps <= 1000000, "steps must be in [1, 1e6], got " << c.steps);
  DPSGD_CHECK_ARG(c.canaries >= 2 && c.canaries <= 1000000, "canaries must be in [2, 1e6], got " << c.canaries);
  DPSGD_CHECK_ARG(c.dataset_size >= 0, "dataset_size must be >= 0, got " << c.dataset_size);
  DPSGD_CHECK_ARG(std::isfinite(c.clip_norm) && c.clip_norm > 0.0,
                  "clip_norm must be finite and > 0, got " << c.clip_norm);

  GradientCanaryAuditResult result;
  const TrainingPhase phase{c.sampling_rate, c.noise_multiplier, c.steps};
  result.claimed_epsilon = compute_epsilon(std::span<const TrainingPhase>(&phase, 1), c.delta);

  // Which canaries join the data set: each independently with probability 1/2.
  std::mt19937_64 rng(c.seed);
  result.inserted.resize(static_cast<std::size_t>(c.canaries));
  std::vector<std::int64_t> inserted_ids;
  for (std::int64_t i = 0; i < c.canaries; ++i) {
    result.inserted[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(rng() & 1u);
    if (result.inserted[static_cast<std::size_t>(i)]) inserted_ids.push_back(i);
  }
  const std::int64_t width = c.canaries + kOrdinaryCoordinates;
  const std::int64_t n = c.dataset_size + static_cast<std::int64_t>(inserted_ids.size());
  DPSGD_CHECK_ARG(n >= 1, "the data set is empty: dataset_size 0 and no canary inserted");

  // Example e < dataset_size: an ordinary gradient, Gaussian in the last coordinates (norms around
  // 2C, so most are clipped); example dataset_size + j: canary inserted_ids[j], C e_i.
  RowMajorMatrix<double> ordinary(std::max<std::int64_t>(c.dataset_size, 1), kOrdinaryCoordinates);
  std::normal_distribution<double> normal(0.0, 2.0 * c.clip_norm / std::sqrt(double(kOrdinaryCoordinates)));
  for (Eigen::Index i = 0; i < ordinary.size(); ++i) ordinary.data()[i] = normal(rng);

  PoissonSampler sampler(n, c.sampling_rate, n, c.seed + 1);  // capacity n: no truncation to account for
  DpSgdConfig config;
  config.noise_multiplier = c.add_noise ? c.noise_multiplier : 0.0;
  config.sampling_rate = c.sampling_rate;
  config.expected_batch_size = c.sampling_rate * static_cast<double>(n);
  config.clip = ClipConfig::flat(c.clip_norm);
  DpSgd<double> dp(config, std::make_unique<Sgd<double>>(1.0), c.seed + 2);

  std::vector<double> params(static_cast<std::size_t>(width), 0.0);
  std::vector<double> gradient(static_cast<std::size_t>(width));
  result.scores.assign(static_cast<std::size_t>(c.canaries), 0.0);
  // The auditor's statistic assumes the claimed mechanism: canary present in a step moves its
  // coordinate by C against noise of standard deviation sigma C.
  const double mu = 1.0 / c.noise_multiplier;
  const double log_keep = std::log1p(-c.sampling_rate), log_q = std::log(c.sampling_rate);
  RowMajorMatrix<double> rows;
  for (std::int64_t t = 0; t < c.steps; ++t) {
    const Batch batch = sampler.sample(dp.next_step());
    rows.setZero(static_cast<Eigen::Index>(batch.indices.size()), width);
    for (std::size_t slot = 0; slot < batch.indices.size(); ++slot) {
      const std::int64_t e = batch.indices[slot];
      if (e == Batch::kPaddingIndex) continue;
      if (e < c.dataset_size) {
        rows.row(static_cast<Eigen::Index>(slot)).tail(kOrdinaryCoordinates) = ordinary.row(e);
      } else {
        rows(static_cast<Eigen::Index>(slot), inserted_ids[static_cast<std::size_t>(e - c.dataset_size)]) = c.clip_norm;
      }
    }
    std::fill(gradient.begin(), gradient.end(), 0.0);
    clip_and_accumulate<double>(rows, batch.mask, config.clip, gradient);
    dp.step(params, gradient);  // gradient now holds the released (noisy sum) / expected batch size
    for (std::int64_t i = 0; i < c.canaries; ++i) {
      const double z =
          gradient[static_cast<std::size_t>(i)] * config.expected_batch_size / (c.noise_multiplier * c.clip_norm);
      result.scores[static_cast<std::size_t>(i)] += log_add(log_keep, log_q + mu * z - 0.5 * mu * mu);
    }
  }

  std::vector<double> in_scores, out_scores;
  for (std::int64_t i = 0; i < c.canaries; ++i) {
    (result.inserted[static_cast<std::size_t>(i)] ? in_scores : out_scores)
        .push_back(result.scores[static_cast<std::size_t>(i)]);
  }
  result.one_run = one_run_audit(result.scores, result.inserted, c.delta, c.alpha);
  if (!in_scores.empty() && !out_scores.empty()) {
    result.threshold = threshold_epsilon_lower_bound(in_scores, out_scores, c.delta, c.alpha);
  }
  return result;
}

}  // namespace dpsgd::audit

// DpSgd: the step driver that turns a clipped gradient sum into a private update and records it.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "dpsgd/accounting/privacy_accountant.hpp"
#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/core/detail/vector_ops.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/real_scalar.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"
#include "dpsgd/noise/noise_streams.hpp"
#include "dpsgd/noise/secure_seed.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/sampling/batch.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace dpsgd {

struct DpSgdConfig {
  // sigma: the noise stddev is sigma * clip.sensitivity().
  double noise_multiplier = 1.0;
  // q of the Poisson sampler, recorded for the accountant.
  double sampling_rate = 0.01;
  // The public constant the noisy sum is divided by, normally q N. Never the realised batch size:
  // that is a function of the private data (see docs/privacy.md).
  double expected_batch_size = 1.0;
  ClipConfig clip = ClipConfig::flat(1.0);
  NoiseMode noise_mode = NoiseMode::kStandard;
  // For truncated Poisson sampling: recorded so the accountant can charge for truncation.
  std::int64_t dataset_size = 0;
  std::int64_t capacity = 0;

  // Everything the sampler decides, from the sampler: q, the divisor q N and, when its capacity is
  // below N, the truncation the accountant must charge for. The way to build a config.
  static DpSgdConfig for_sampler(const PoissonSampler& sampler, double noise_multiplier, ClipConfig clip) {
    DpSgdConfig config;
    config.noise_multiplier = noise_multiplier;
    config.sampling_rate = sampler.sampling_rate();
    config.expected_batch_size = sampler.expected_batch_size();
    config.clip = clip;
    const bool truncates = sampler.capacity() < sampler.dataset_size();
    config.dataset_size = truncates ? sampler.dataset_size() : 0;
    config.capacity = truncates ? sampler.capacity() : 0;
    config.validate();
    return config;
  }

  void validate() const {
    validate_noise_multiplier(noise_multiplier);
    validate_sampling_rate(sampling_rate);
    validate_positive("expected_batch_size", expected_batch_size);
    clip.validate();
    DPSGD_CHECK_ARG(dataset_size >= 0 && capacity >= 0,
                    "dataset_size and capacity must be >= 0, got " << dataset_size << " and " << capacity);
  }
};

// One object per training run. Each step(): check the clipped sum, record the step with the
// accountant (write-ahead), add N(0, (sigma C)^2) per coordinate, divide by the expected batch
// size, and let the optimiser update the parameters.
template <RealScalar Scalar>
class DpSgd {
 public:
  // The noise seed comes from the OS CSPRNG.
  DpSgd(const DpSgdConfig& config, std::unique_ptr<Optimizer<Scalar>> optimizer,
        PrivacyAccountant* accountant = nullptr)
      : DpSgd(config, std::move(optimizer), secure_random_seed(), accountant) {}
  // Explicit noise seed: reproducible, for tests and research only.
  DpSgd(const DpSgdConfig& config, std::unique_ptr<Optimizer<Scalar>> optimizer, std::uint64_t noise_seed,
        PrivacyAccountant* accountant = nullptr)
      : config_(config), optimizer_(std::move(optimizer)), noise_seed_(noise_seed), accountant_(accountant) {
    config_.validate();
    DPSGD_CHECK_ARG(optimizer_ != nullptr, "optimizer must not be null");
  }

  // The checked step: `batch` is the one the clipped sum was computed from. Its step index must be
  // next_step(), and its sampler must be the one the configuration accounts for (same q; a batch
  // that can be truncated only with the truncation charge configured). Throws InvalidArgument,
  // before anything is recorded or released, on any mismatch.
  void step(std::span<Scalar> params, std::span<Scalar> gradient, const Batch& batch) {
    check_batch(batch);
    step(params, gradient);
  }

  // `gradient` holds sum_i c_i g_i on entry and the privatised mean gradient on return.
  // Throws InvalidArgument if the sizes differ or the sum holds NaN or inf (clipping never
  // produces them, so they signal a bug upstream that noise would otherwise hide).
  // One tensor is the several-tensor step with a list of one: stream 0 of the step, the same bits.
  void step(std::span<Scalar> params, std::span<Scalar> gradient) {
    const std::span<Scalar> param_list[] = {params};
    const std::span<Scalar> gradient_list[] = {gradient};
    step(std::span<const std::span<Scalar>>(param_list), std::span<const std::span<Scalar>>(gradient_list));
  }

  // The step over several tensors (a model whose parameters live in several buffers): gradients[k]
  // holds tensor k's part of the clipped sum; each is noised from its own stream (k of this step's
  // NoiseStreams, so one tensor gets exactly the noise of the single-tensor step), divided by the
  // expected batch size, and the optimiser updates all of them as one parameter vector. The clip
  // norm bounds the whole concatenated gradient, as for one tensor. Checks as the single step does,
  // before anything is recorded or released.
  void step(std::span<const std::span<Scalar>> params, std::span<const std::span<Scalar>> gradients,
            const Batch& batch) {
    check_batch(batch);
    step(params, gradients);
  }

  void step(std::span<const std::span<Scalar>> params, std::span<const std::span<Scalar>> gradients) {
    // The last index is never used: after it the counter would wrap to 0 and reuse step 0's noise.
    DPSGD_CHECK_ARG(next_step_ < std::numeric_limits<std::uint64_t>::max(),
                    "the step index is exhausted (next_step = " << next_step_ << "); no further step may be taken");
    DPSGD_CHECK_ARG(params.size() == gradients.size() && !params.empty(),
                    "params and gradients must list the same (non-zero) number of tensors, got "
                        << params.size() << " and " << gradients.size());
    for (std::size_t k = 0; k < params.size(); ++k) {
      DPSGD_CHECK_ARG(params[k].size() == gradients[k].size(), "params[" << k << "].size() = " << params[k].size()
                                                                         << " must equal gradients[" << k
                                                                         << "].size() = " << gradients[k].size());
      const std::size_t bad = detail::first_nonfinite<Scalar>(gradients[k]);
      DPSGD_CHECK_ARG(bad == gradients[k].size(), "gradients[" << k << "][" << bad << "] is " << gradients[k][bad]
                                                               << "; the clipped sum must be finite");
    }
    if (accountant_ != nullptr) {
      accountant_->record(DpStepRecord{next_step_, config_.sampling_rate, config_.noise_multiplier,
                                       config_.dataset_size, config_.capacity});
    }
    NoiseStreams streams(noise_seed_, next_step_, config_.noise_mode);
    const auto scale = static_cast<Scalar>(1.0 / config_.expected_batch_size);
    std::vector<std::span<const Scalar>> noisy;
    noisy.reserve(gradients.size());
    for (const std::span<Scalar> gradient : gradients) {
      streams.add<Scalar>(gradient, noise_stddev(), scale);
      noisy.emplace_back(gradient.data(), gradient.size());
    }
    optimizer_->update(params, std::span<const std::span<const Scalar>>(noisy));
    ++next_step_;
  }

  double noise_stddev() const { return config_.noise_multiplier * config_.clip.sensitivity(); }
  // The index of the next step: pass it to PoissonSampler::sample so that batches and noise
  // advance together.
  std::uint64_t next_step() const { return next_step_; }
  // For resuming a run: steps already taken must never be taken again with the same noise.
  void resume_at(std::uint64_t next_step) {
    DPSGD_CHECK_ARG(next_step >= next_step_, "next_step must be >= " << next_step_
                                                                     << " (reusing a step's noise breaks privacy), got "
                                                                     << next_step);
    next_step_ = next_step;
  }
  const DpSgdConfig& config() const { return config_; }
  std::uint64_t noise_seed() const { return noise_seed_; }
  Optimizer<Scalar>& optimizer() { return *optimizer_; }

 private:
  void check_batch(const Batch& batch) const {
    DPSGD_CHECK_ARG(batch.step == next_step_, "batch.step = " << batch.step << " must be next_step() = " << next_step_);
    DPSGD_CHECK_ARG(batch.sampling_rate == config_.sampling_rate,
                    "batch.sampling_rate = " << batch.sampling_rate << " differs from config.sampling_rate = "
                                             << config_.sampling_rate << "; build the config with for_sampler");
    const bool truncates = batch.capacity() < batch.dataset_size;
    if (truncates) {
      DPSGD_CHECK_ARG(config_.dataset_size == batch.dataset_size && config_.capacity == batch.capacity(),
                      "the batch comes from a sampler that truncates to "
                          << batch.capacity() << " of " << batch.dataset_size
                          << " examples, but the config charges for (" << config_.dataset_size << ", "
                          << config_.capacity << "); build the config with for_sampler");
    }
  }

  DpSgdConfig config_;
  std::unique_ptr<Optimizer<Scalar>> optimizer_;
  std::uint64_t noise_seed_;
  PrivacyAccountant* accountant_;
  std::uint64_t next_step_ = 0;
};

}  // namespace dpsgd

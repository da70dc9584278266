// TrainingRun: the wiring a private training run's guarantee depends on, in one object that cannot be
// set up wrong: sampler, step driver, ledger, seed, checkpoints and resume.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/optim/dp_sgd.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace dpsgd {

struct TrainingRunConfig {
  // The run's files: run.json (what defines the run), ledger.json (every charged step; locked while
  // the run is open), seed (the secret every batch and noise vector follows from; owner-only) and
  // checkpoint.json (parameters, optimiser, step; no secret).
  std::string directory;
  enum class Start {
    kNew,     // a new run: refused (FileExists) if the directory already holds one
    kResume,  // continue the run in the directory: refused if there is none or it was defined otherwise
  };
  Start start = Start::kNew;
  std::int64_t dataset_size = 0;  // N, public
  double sampling_rate = 0.0;     // q
  std::int64_t capacity = 0;      // batch slots; below N, truncation is charged (always)
  double noise_multiplier = 1.0;
  ClipConfig clip = ClipConfig::flat(1.0);
  // The caller's own settings (model, learning rate, data...): a resume with others is refused.
  nlohmann::json settings = nlohmann::json::object();
  // Reproducible runs for tests and research only; by default the seed comes from the OS CSPRNG.
  std::optional<std::uint64_t> seed;
};

// One run: new, or resumed with every charged step still charged. All files are checked or created
// before the first step; a second process on the same directory is locked out.
class TrainingRun {
 public:
  TrainingRun(TrainingRunConfig config, std::unique_ptr<Optimizer<float>> optimizer);
  TrainingRun(const TrainingRun&) = delete;
  TrainingRun& operator=(const TrainingRun&) = delete;

  // The parameters and program data of the checkpoint resumed from; empty for a new run and for a
  // resumed run that was stopped before its first checkpoint (its charged steps stay charged).
  const std::vector<float>& restored_parameters() const { return restored_parameters_; }
  const nlohmann::json& restored_extra() const { return restored_extra_; }

  // The batch of the next step (its capacity slots, mask marking padding).
  Batch next_batch() const { return sampler_->sample(dp_->next_step()); }
  // The checked DP step for that batch: records it in the ledger, then noises and applies it.
  void step(std::span<float> params, std::span<float> gradient, const Batch& batch);
  // Saves parameters, optimiser state and step (atomically; the seed is not in it). Non-finite
  // parameters are refused (InvalidArgument) and the last good checkpoint is kept.
  void checkpoint(std::span<const float> params, const nlohmann::json& extra = nlohmann::json::object());

  std::uint64_t next_step() const { return dp_->next_step(); }
  double epsilon(double delta, const AccountantOptions& options = {}) const { return ledger_.epsilon(delta, options); }
  const PrivacyLedger& ledger() const { return ledger_; }
  const DpSgdConfig& config() const { return dp_->config(); }
  const PoissonSampler& sampler() const { return *sampler_; }
  // A seed for initialising the model (not the sampler's or the noise's).
  std::uint64_t initialisation_seed() const { return initialisation_seed_; }

 private:
  std::string file(const char* name) const;

  TrainingRunConfig config_;
  nlohmann::json definition_;
  std::uint64_t seed_ = 0, initialisation_seed_ = 0;
  PrivacyLedger ledger_;
  std::optional<PoissonSampler> sampler_;
  std::unique_ptr<DpSgd<float>> dp_;
  std::vector<float> restored_parameters_;
  nlohmann::json restored_extra_ = nlohmann::json::object();
};

}  // namespace dpsgd

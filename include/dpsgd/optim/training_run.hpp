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
#include "dpsgd/optim/learning_rate_schedule.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/sum_release.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace dpsgd {

struct TrainingRunConfig {
  // The run's files: run.json (what defines the run), ledger.json (every charged step; locked while
  // the run is open), seed (the secret every batch and noise vector follows from; owner-only) and
  // checkpoint.json (parameters, optimiser, step; no secret).
  std::string directory;
  enum class Start {
    kNew,          // a new run: refused (FileExists) if the directory exists and is not empty
    kResume,       // continue the run in the directory: refused if there is none or it was defined otherwise
    kResumeOrNew,  // continue the run if the directory holds one, else start it (a restarted job's command)
  };
  Start start = Start::kNew;
  std::int64_t dataset_size = 0;  // N, public
  double sampling_rate = 0.0;     // q
  std::int64_t capacity = 0;      // batch slots; below N, truncation is charged (always)
  double noise_multiplier = 1.0;
  ClipConfig clip = ClipConfig::flat(1.0);
  // The planned number of steps. Not part of the mechanism: a resume may change it (notes() says so,
  // and the ledger charges every step actually taken).
  std::int64_t steps = 0;
  // The caller's own settings (model, learning rate, data...): a resume with others is refused.
  nlohmann::json settings = nlohmann::json::object();
  // Reproducible runs for tests and research only; by default the seed comes from the OS CSPRNG.
  std::optional<std::uint64_t> seed;
  // A statistic of the training set released once before training (release_sum), charged to the
  // same ledger; the noise multiplier above must have been calibrated with it (plan_run does).
  std::optional<SumRelease> release;
  // The learning rate's factor at each step, set on the optimiser before every step from the step
  // index and `steps` (so a resumed run continues the same schedule). Part of the run's definition
  // when not constant.
  LearningRateSchedule schedule{};
};

// One run: new, or resumed with every charged step still charged. All files are checked or created
// before the first step (a new run's files appear together or not at all); a second process on the
// same directory is locked out.
class TrainingRun {
 public:
  TrainingRun(TrainingRunConfig config, std::unique_ptr<Optimizer<float>> optimizer);
  TrainingRun(const TrainingRun&) = delete;
  TrainingRun& operator=(const TrainingRun&) = delete;

  // What run.json in `directory` says (the mechanism, settings and planned_steps), or nothing if the
  // directory holds no run: lets a program resume with the run's own noise multiplier and capacity.
  static std::optional<nlohmann::json> definition_in(const std::string& directory);
  // A directory name for a new run that does not exist yet: <parent>/<name>-<UTC time>[-k].
  static std::string fresh_directory(const std::string& parent, const std::string& name);

  // Data-parallel training (dpsgd::mpi): what another process needs to take exactly this run's steps:
  // the definition, the secret seed, the next step, the ledger, the optimiser state and the restored
  // program data. It holds the seed: for a peer process's memory, never for a file or a log.
  nlohmann::json replica_state() const;
  // A replica of the run replica_state() describes, opened from the same config (its mechanism and
  // settings must match the state's, or InvalidArgument): the same batches, noise and updates; steps
  // are charged to an in-memory copy of the ledger; it owns no file, and checkpoint() is refused. The
  // parameters to continue from come separately (restored_parameters on the writer).
  static std::unique_ptr<TrainingRun> replica(TrainingRunConfig config, const nlohmann::json& state,
                                              std::vector<float> restored_parameters,
                                              std::unique_ptr<Optimizer<float>> optimizer);
  // Whether this object is a replica (no files).
  bool is_replica() const { return replica_; }

  // Whether this run continues one found in the directory (kResume, or kResumeOrNew that found one).
  bool resumed() const { return resumed_; }
  // What opening the run decided that its user should know, one sentence each: steps charged without
  // a checkpoint, a planned length changed by the resume. Empty for a new run.
  const std::vector<std::string>& notes() const { return notes_; }
  // The parameters and program data of the checkpoint resumed from; empty for a new run and for a
  // resumed run that was stopped before its first checkpoint (its charged steps stay charged).
  const std::vector<float>& restored_parameters() const { return restored_parameters_; }
  const nlohmann::json& restored_extra() const { return restored_extra_; }

  // Whether the planned steps are all taken.
  bool finished() const { return static_cast<std::int64_t>(next_step()) >= config_.steps; }
  // The batch of the next step (its capacity slots, mask marking padding).
  Batch next_batch() const { return sampler_->sample(dp_->next_step()); }
  // The checked DP step for that batch: records it in the ledger, then noises and applies it.
  // The run's release (config.release) over the dataset_size training rows: on a new run computed
  // (non-finite rows refused before any charge), charged to the ledger (before the noise is added and
  // anything is returned) and saved as release.json; on a resumed run
  // the saved values, without reading a row (computing it again would reuse its noise). Throws
  // dpsgd::Error if the ledger charged the release but its file is gone: start a new run then.
  std::vector<double> release_sum(const RowSource& row);

  void step(std::span<float> params, std::span<float> gradient, const Batch& batch);
  // The same over several parameter tensors, each noised from its own stream.
  void step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients, const Batch& batch);
  // Saves parameters, optimiser state and step (atomically; the seed is not in it). Non-finite
  // parameters are refused (InvalidArgument) and the last good checkpoint is kept.
  void checkpoint(std::span<const float> params, const nlohmann::json& extra = nlohmann::json::object());

  std::uint64_t next_step() const { return dp_->next_step(); }
  std::int64_t planned_steps() const { return config_.steps; }
  double epsilon(double delta, const AccountantOptions& options = {}) const { return ledger_.epsilon(delta, options); }
  const PrivacyLedger& ledger() const { return ledger_; }
  const DpSgdConfig& config() const { return dp_->config(); }
  const PoissonSampler& sampler() const { return *sampler_; }
  const std::string& directory() const { return config_.directory; }
  // A seed for initialising the model (not the sampler's or the noise's).
  std::uint64_t initialisation_seed() const { return initialisation_seed_; }

 private:
  struct ReplicaTag {};
  TrainingRun(ReplicaTag, TrainingRunConfig config, const nlohmann::json& state, std::vector<float> parameters,
              std::unique_ptr<Optimizer<float>> optimizer);
  void start_stepping(std::unique_ptr<Optimizer<float>> optimizer);
  void schedule_learning_rate();
  std::string file(const char* name) const;
  void create();
  void open_existing();
  void restore_checkpoint();

  TrainingRunConfig config_;
  nlohmann::json definition_;
  bool resumed_ = false;
  bool replica_ = false;
  std::vector<std::string> notes_;
  std::uint64_t seed_ = 0, initialisation_seed_ = 0;
  PrivacyLedger ledger_;
  std::optional<PoissonSampler> sampler_;
  std::unique_ptr<DpSgd<float>> dp_;
  std::vector<float> restored_parameters_;
  nlohmann::json restored_extra_ = nlohmann::json::object();
};

}  // namespace dpsgd

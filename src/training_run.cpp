// TrainingRun: a run's files (definition, ledger, secret seed, checkpoint) and the checks that tie them.
#include "dpsgd/optim/training_run.hpp"

#include <filesystem>
#include <string>
#include <utility>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/core/vector_ops.hpp"
#include "dpsgd/noise/secure_seed.hpp"
#include "dpsgd/optim/checkpoint.hpp"

namespace dpsgd {
namespace {

constexpr const char* kFormat = "dpsgd.training_run";

// Everything that defines the mechanism and the caller's settings: what a resume must match.
nlohmann::json definition_of(const TrainingRunConfig& c) {
  return {
      {"format", kFormat},      {"dataset_size", c.dataset_size},         {"sampling_rate", c.sampling_rate},
      {"capacity", c.capacity}, {"noise_multiplier", c.noise_multiplier}, {"clip_sensitivity", c.clip.sensitivity()},
      {"settings", c.settings}};
}

void validate(const TrainingRunConfig& c) {
  DPSGD_CHECK_ARG(!c.directory.empty(), "directory must not be empty");
  DPSGD_CHECK_ARG(c.start == TrainingRunConfig::Start::kNew || c.start == TrainingRunConfig::Start::kResume,
                  "start must be kNew or kResume, got " << static_cast<int>(c.start));
  DPSGD_CHECK_ARG(c.dataset_size >= 1, "dataset_size must be >= 1, got " << c.dataset_size);
  validate_sampling_rate(c.sampling_rate);
  DPSGD_CHECK_ARG(c.capacity >= 1 && c.capacity <= c.dataset_size,
                  "capacity must be in [1, dataset_size = " << c.dataset_size << "], got " << c.capacity);
  validate_noise_multiplier(c.noise_multiplier);
  c.clip.validate();
}

// A 64-bit mix (the splitmix64 finaliser) so that the model's initialisation seed is not one of the
// seeds the sampler or the noise use.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

std::string TrainingRun::file(const char* name) const {
  return (std::filesystem::path(config_.directory) / name).string();
}

TrainingRun::TrainingRun(TrainingRunConfig config, std::unique_ptr<Optimizer<float>> optimizer)
    : config_(std::move(config)) {
  validate(config_);
  DPSGD_CHECK_ARG(optimizer != nullptr, "optimizer must not be null");
  definition_ = definition_of(config_);
  const std::string definition_text = definition_.dump(2) + "\n";
  if (config_.start == TrainingRunConfig::Start::kNew) {
    std::filesystem::create_directories(config_.directory);
    // run.json first: it claims the directory (FileExists if a run is there), before any secret is made.
    create_file_atomically(file("run.json"), definition_text);
    seed_ = config_.seed ? *config_.seed : secure_random_seed();
    create_seed_file(file("seed"), seed_);
    ledger_ = PrivacyLedger(file("ledger.json"));
  } else {
    ledger_ = PrivacyLedger::open(file("ledger.json"));  // locked: a second process stops here
    if (nlohmann::json::parse(read_file(file("run.json")), nullptr, false) != definition_) {
      throw InvalidArgument("dpsgd::TrainingRun: the run in " + config_.directory +
                            " was defined otherwise (run.json); a resume must not change the mechanism or settings");
    }
    seed_ = read_seed_file(file("seed"));
    if (config_.seed && *config_.seed != seed_)
      throw InvalidArgument("dpsgd::TrainingRun: seed differs from the seed of the run being resumed");
  }
  initialisation_seed_ = mix(seed_);
  sampler_.emplace(config_.dataset_size, config_.sampling_rate, config_.capacity, seed_ + 2);
  dp_ = std::make_unique<DpSgd<float>>(DpSgdConfig::for_sampler(*sampler_, config_.noise_multiplier, config_.clip),
                                       std::move(optimizer), seed_ + 1, &ledger_);

  std::uint64_t next = ledger_.next_step();
  if (config_.start == TrainingRunConfig::Start::kResume && std::filesystem::exists(file("checkpoint.json"))) {
    TrainingCheckpoint saved = load_checkpoint(file("checkpoint.json"));
    if (saved.format != kFormat || saved.settings != definition_)
      throw FormatError("dpsgd: checkpoint " + file("checkpoint.json") + " refused: it belongs to another run");
    if (!ledger_.continues(saved.ledger)) {
      throw FormatError("dpsgd: checkpoint " + file("checkpoint.json") +
                        " refused: the ledger does not continue the history it saw");
    }
    dp_->optimizer().set_state(saved.optimizer_state);
    restored_parameters_ = std::move(saved.params);
    restored_extra_ = std::move(saved.extra);
    next = std::max(next, saved.next_step);
  }
  // Steps charged after the last checkpoint (or with none) stay charged and are never taken again.
  if (next > 0) dp_->resume_at(next);
}

void TrainingRun::step(std::span<float> params, std::span<float> gradient, const Batch& batch) {
  dp_->step(params, gradient, batch);
}

void TrainingRun::checkpoint(std::span<const float> params, const nlohmann::json& extra) {
  const std::size_t bad = detail::first_nonfinite<float>(params);
  DPSGD_CHECK_ARG(bad == params.size(), "params[" << bad << "] is " << params[bad]
                                                  << ": a non-finite model is not saved; the last checkpoint is kept");
  TrainingCheckpoint state;
  state.format = kFormat;
  state.settings = definition_;
  state.seed = 0;  // the seed lives in its own owner-only file
  state.next_step = dp_->next_step();
  state.params.assign(params.begin(), params.end());
  state.optimizer_state = dp_->optimizer().state();
  state.ledger = ledger_;
  state.extra = extra;
  save_checkpoint(file("checkpoint.json"), state);
}

}  // namespace dpsgd

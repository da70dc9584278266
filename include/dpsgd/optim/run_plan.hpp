// plan_run: a TrainingRunConfig from what a user states (data size, expected batch, epochs, privacy target).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/optim/training_run.hpp"

namespace dpsgd {

// What a training program knows before its run is opened.
struct RunPlanRequest {
  std::string directory;             // the run's directory
  bool resume = false;               // continue the run there if it holds one (kResumeOrNew), else kNew
  std::int64_t dataset_size = 0;     // N >= 1
  double expected_batch_size = 0.0;  // q N, in [1, N]
  double epochs = 0.0;               // steps = ceil(epochs / q)
  ClipConfig clip = ClipConfig::flat(1.0);
  double epsilon = 0.0;  // > 0: the target a new run's noise is calibrated to; with noise_multiplier or
                         // no_privacy it only sets the capacity rule's share of delta
  double delta = 0.0;    // in (0, 1)
  std::optional<double> noise_multiplier;              // use this sigma instead of calibrating
  bool no_privacy = false;                             // sigma 0 (epsilon infinite): non-private baselines only
  nlohmann::json settings = nlohmann::json::object();  // the program's settings (a resume must match)
  std::optional<std::uint64_t> seed;                   // reproducible runs only; default OS CSPRNG
  std::optional<SumRelease> release;  // a statistic released before training: calibrated together with it
  LearningRateSchedule schedule{};    // the learning rate's factor per step (public: costs nothing)
};

// The run's configuration, with the truncation and the noise set the one safe way:
// - a new run's capacity keeps the truncation charge at 1% of delta (capacity_for_delta_share), and
//   its noise multiplier is calibrated (PLD) to (epsilon, delta) with that charge included;
// - a resumed run keeps the capacity and noise multiplier its run.json holds (only its length may
//   change; TrainingRun refuses anything else), unless `noise_multiplier` is given, which TrainingRun
//   then checks against the stored one.
// Throws InvalidArgument naming the field for a value out of range, and whatever calibration throws
// when no sigma reaches the target.
TrainingRunConfig plan_run(const RunPlanRequest& request);

}  // namespace dpsgd

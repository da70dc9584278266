// plan_run: a run's capacity and calibrated noise for a new run, or a resumed run's own.
#include "dpsgd/optim/run_plan.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "dpsgd/accounting/calibration.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

void validate(const RunPlanRequest& r) {
  if (r.dataset_size < 1) throw_invalid_value("dataset_size", ">= 1", r.dataset_size);
  if (!(std::isfinite(r.expected_batch_size) && r.expected_batch_size >= 1.0 &&
        r.expected_batch_size <= static_cast<double>(r.dataset_size))) {
    throw_invalid_value("expected_batch_size", "in [1, dataset_size = " + std::to_string(r.dataset_size) + "]",
                        r.expected_batch_size);
  }
  validate_positive("epochs", r.epochs);
  validate_epsilon(r.epsilon);
  validate_delta(r.delta);
  if (r.noise_multiplier) validate_noise_multiplier(*r.noise_multiplier);
}

}  // namespace

TrainingRunConfig plan_run(const RunPlanRequest& r) {
  validate(r);
  TrainingRunConfig c;
  c.directory = r.directory;
  c.start = r.resume ? TrainingRunConfig::Start::kResumeOrNew : TrainingRunConfig::Start::kNew;
  c.dataset_size = r.dataset_size;
  c.sampling_rate = r.expected_batch_size / static_cast<double>(r.dataset_size);
  c.steps = static_cast<std::int64_t>(std::ceil(r.epochs / c.sampling_rate));
  c.clip = r.clip;
  c.settings = r.settings;
  c.seed = r.seed;
  c.release = r.release;
  c.schedule = r.schedule;
  if (const auto stored = r.resume ? TrainingRun::definition_in(r.directory) : std::nullopt) {
    c.capacity = stored->value("capacity", std::int64_t{0});
    c.noise_multiplier = r.noise_multiplier.value_or(stored->value("noise_multiplier", 0.0));
    return c;
  }
  c.capacity = capacity_for_delta_share(c.dataset_size, c.sampling_rate, c.steps, r.epsilon, r.delta).capacity;
  if (r.no_privacy) {
    c.noise_multiplier = 0.0;
    return c;
  }
  if (r.noise_multiplier) {
    c.noise_multiplier = *r.noise_multiplier;
    return c;
  }
  const bool truncated = c.capacity < c.dataset_size;
  std::vector<TrainingPhase> spent;
  if (r.release) spent.push_back(TrainingPhase{{1.0, r.release->noise_multiplier, 1}});
  c.noise_multiplier = calibrate_noise_after(spent, {.sampling_rate = c.sampling_rate,
                                                     .steps = c.steps,
                                                     .epsilon = r.epsilon,
                                                     .delta = r.delta,
                                                     .dataset_size = truncated ? c.dataset_size : 0,
                                                     .capacity = truncated ? c.capacity : 0})
                           .noise_multiplier;
  return c;
}

}  // namespace dpsgd

// TrainingPhase's validation and the probability that a run's truncated batches ever truncate.
#include "dpsgd/accounting/training_phase.hpp"

#include <algorithm>
#include <string>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {

void validate_training_phase(const TrainingPhase& phase, std::size_t index) {
  const std::string field = "phases[" + std::to_string(index) + "].";
  validate_sampling_rate(phase.sampling_rate, field + "sampling_rate");
  validate_accounted_noise_multiplier(phase.noise_multiplier, field + "noise_multiplier");
  DPSGD_CHECK_ARG(phase.steps >= 1, "phases[" << index << "].steps must be >= 1, got " << phase.steps);
  DPSGD_CHECK_ARG((phase.dataset_size == 0) == (phase.capacity == 0),
                  "phases[" << index
                            << "]: dataset_size and capacity must both be set for truncation or both be 0, got "
                            << phase.dataset_size << " and " << phase.capacity);
  DPSGD_CHECK_ARG(phase.dataset_size >= 0 && phase.capacity >= 0,
                  "phases[" << index << "]: dataset_size and capacity must be >= 0, got " << phase.dataset_size
                            << " and " << phase.capacity);
}

double truncation_probability(std::span<const TrainingPhase> phases) {
  double eta = 0.0;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    validate_training_phase(phases[k], k);
    if (!phases[k].truncated()) continue;
    eta += static_cast<double>(phases[k].steps) *
           binomial_upper_tail(phases[k].dataset_size + 1, phases[k].sampling_rate, phases[k].capacity);
  }
  return std::min(eta, 1.0);
}

}  // namespace dpsgd

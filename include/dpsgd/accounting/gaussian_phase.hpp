// GaussianPhase: a run of identical Poisson-subsampled Gaussian steps, the unit the accountants compose.
#pragma once

#include <cstdint>

namespace dpsgd {

// `steps` identical steps of Poisson sampling at `sampling_rate` with Gaussian noise of multiplier
// `noise_multiplier` (stddev / L2 sensitivity).
struct GaussianPhase {
  double sampling_rate = 0.0;
  double noise_multiplier = 0.0;
  std::int64_t steps = 0;
};

}  // namespace dpsgd

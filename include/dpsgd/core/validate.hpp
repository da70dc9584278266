// Named validators for privacy and size parameters, so every entry point words its errors alike.
#pragma once

#include <cmath>
#include <cstdint>

#include "dpsgd/core/error.hpp"

namespace dpsgd {

// Sampling rate q of Poisson sampling: each example is in a batch with probability q.
inline void validate_sampling_rate(double q) {
  DPSGD_CHECK_ARG(std::isfinite(q) && q > 0.0 && q <= 1.0, "sampling_rate must be in (0, 1], got " << q);
}

// Noise multiplier sigma: noise stddev is sigma * clip_norm. Zero is allowed (no noise, no privacy)
// so that non-private baselines can share the code path.
inline void validate_noise_multiplier(double sigma) {
  DPSGD_CHECK_ARG(std::isfinite(sigma) && sigma >= 0.0, "noise_multiplier must be finite and >= 0, got " << sigma);
}

// Clip norm C: at least 1e-20 (ClipConfig::kMinClipNorm says why), finite.
inline void validate_clip_norm(double clip_norm) {
  DPSGD_CHECK_ARG(std::isfinite(clip_norm) && clip_norm >= 1e-20,
                  "clip_norm must be finite and >= 1e-20, got " << clip_norm);
}

inline void validate_delta(double delta) {
  DPSGD_CHECK_ARG(std::isfinite(delta) && delta > 0.0 && delta < 1.0, "delta must be in (0, 1), got " << delta);
}

inline void validate_epsilon(double epsilon) {
  DPSGD_CHECK_ARG(std::isfinite(epsilon) && epsilon > 0.0, "epsilon must be finite and > 0, got " << epsilon);
}

// A value that must be a finite, strictly positive real (learning rates, batch-size constants).
inline void validate_positive(const char* name, double value) {
  DPSGD_CHECK_ARG(std::isfinite(value) && value > 0.0, name << " must be finite and > 0, got " << value);
}

}  // namespace dpsgd

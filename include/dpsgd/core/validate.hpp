// Named validators for privacy and size parameters: one family for the library and the command line,
// so every entry point words its errors alike and applies the same rule.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "dpsgd/core/error.hpp"

namespace dpsgd {

// The error every validator throws: InvalidArgument("<name> must be <requirement>, got <value>"), the
// value printed in full precision. For checks of this family that have no validator of their own.
template <typename Value>
[[noreturn]] void throw_invalid_value(std::string_view name, std::string_view requirement, const Value& value) {
  std::ostringstream message;
  message.precision(17);
  message << name << " must be " << requirement << ", got " << value;
  throw InvalidArgument(message.str());
}

// Each validator names the argument it checks: a parameter name by default, a flag ("--delta") when
// the command line calls it.

// Sampling rate q of Poisson sampling: each example is in a batch with probability q.
inline void validate_sampling_rate(double q, std::string_view name = "sampling_rate") {
  if (!(std::isfinite(q) && q > 0.0 && q <= 1.0)) throw_invalid_value(name, "in (0, 1]", q);
}

// Noise multiplier sigma of a step: noise stddev is sigma * clip_norm. Zero is allowed (no noise, no
// privacy, an infinite epsilon in the ledger) so that non-private baselines share the code path.
inline void validate_noise_multiplier(double sigma, std::string_view name = "noise_multiplier") {
  if (!(std::isfinite(sigma) && sigma >= 0.0)) throw_invalid_value(name, "finite and >= 0", sigma);
}

// Noise multiplier of an accounting query: the accountants answer only for sigma > 0 (at sigma 0 the
// epsilon is infinite for every delta < 1, which a query has no use for).
inline void validate_accounted_noise_multiplier(double sigma, std::string_view name = "noise_multiplier") {
  if (!(std::isfinite(sigma) && sigma > 0.0)) throw_invalid_value(name, "finite and > 0", sigma);
}

// Clip norm C: at least 1e-20 (ClipConfig::kMinClipNorm says why), finite.
inline void validate_clip_norm(double clip_norm, std::string_view name = "clip_norm") {
  if (!(std::isfinite(clip_norm) && clip_norm >= 1e-20)) throw_invalid_value(name, "finite and >= 1e-20", clip_norm);
}

inline void validate_delta(double delta, std::string_view name = "delta") {
  if (!(std::isfinite(delta) && delta > 0.0 && delta < 1.0)) throw_invalid_value(name, "in (0, 1)", delta);
}

inline void validate_epsilon(double epsilon, std::string_view name = "epsilon") {
  if (!(std::isfinite(epsilon) && epsilon > 0.0)) throw_invalid_value(name, "finite and > 0", epsilon);
}

// A value that must be a finite, strictly positive real (learning rates, batch-size constants).
inline void validate_positive(std::string_view name, double value) {
  if (!(std::isfinite(value) && value > 0.0)) throw_invalid_value(name, "finite and > 0", value);
}

// A count given as a real (a command-line flag, a JSON number): an integer in [low, high].
inline std::int64_t validate_count(std::string_view name, double value, double low, double high) {
  if (!(std::isfinite(value) && value == std::floor(value) && value >= low && value <= high)) {
    std::ostringstream range;
    range.precision(17);
    range << "an integer in [" << low << ", " << high << "]";
    throw_invalid_value(name, range.str(), value);
  }
  return static_cast<std::int64_t>(value);
}

}  // namespace dpsgd

// LearningRateSchedule: the factor of the base learning rate at each step of a planned run, a
// function of the step index and the planned length only (public: a schedule costs no privacy).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>

#include "dpsgd/core/validate.hpp"

namespace dpsgd {

struct LearningRateSchedule {
  enum class Kind {
    kConstant,  // factor 1 throughout
    kCosine,    // from 1 down to final_factor along half a cosine period
    kLinear,    // from 1 down to final_factor in a straight line
  };
  Kind kind = Kind::kConstant;
  // The factor of the last planned step (kCosine, kLinear), in [0, 1].
  double final_factor = 0.0;

  // Throws InvalidArgument if final_factor is outside [0, 1].
  void validate() const {
    if (!(final_factor >= 0.0 && final_factor <= 1.0)) throw_invalid_value("final_factor", "in [0, 1]", final_factor);
  }

  // The factor at `step` (0-based) of a run planned for `planned_steps`; steps past the plan (a resume
  // that lengthened the run takes the new plan) keep the final factor.
  double factor(std::uint64_t step, std::int64_t planned_steps) const {
    if (kind == Kind::kConstant || planned_steps <= 1) return 1.0;
    const double progress =
        std::fmin(1.0, static_cast<double>(step) / static_cast<double>(planned_steps - 1));  // in [0, 1]
    const double shape = kind == Kind::kCosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * progress)) : 1.0 - progress;
    return final_factor + (1.0 - final_factor) * shape;
  }

  std::string name() const {
    for (const auto& [k, n] : kNames)
      if (k == kind) return n;
    return "constant";
  }
  // The kind named by name(); throws InvalidArgument naming `argument` for any other string.
  static Kind kind_named(const std::string& argument, const std::string& value) {
    for (const auto& [k, n] : kNames)
      if (value == n) return k;
    throw_invalid_value(argument, "one of constant, cosine, linear", value);
  }

 private:
  // One table for both directions of the kind <-> name mapping.
  static constexpr std::pair<Kind, const char*> kNames[] = {
      {Kind::kConstant, "constant"}, {Kind::kCosine, "cosine"}, {Kind::kLinear, "linear"}};
};

}  // namespace dpsgd

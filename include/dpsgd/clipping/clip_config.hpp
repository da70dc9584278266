// ClipConfig: the clip norms of each parameter group (one group: flat clipping; several: per-layer).
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/clipping/clip_method.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {

// Per-layer clipping clips each group k of an example's gradient to its own norm C_k; the whole
// example then moves the sum by at most sqrt(sum_k C_k^2), the sensitivity the noise must cover.
struct ClipConfig {
  // The smallest clip norm. The clip bound is relative (within 1e-4 of C) for every finite gradient;
  // products that round to float subnormals keep only an absolute precision of 2^-150 per element,
  // which stays far below 1e-4 C for any C >= 1e-20 and any layer of up to 10^30 entries.
  static constexpr double kMinClipNorm = 1e-20;

  std::vector<double> group_clip_norms{1.0};
  ClipMethod method = ClipMethod::kHard;
  // gamma of automatic clipping; ignored by hard clipping.
  double automatic_stability = 0.01;

  static ClipConfig flat(double clip_norm, ClipMethod method = ClipMethod::kHard) {
    return ClipConfig{{clip_norm}, method, 0.01};
  }
  static ClipConfig per_group(std::vector<double> clip_norms, ClipMethod method = ClipMethod::kHard) {
    return ClipConfig{std::move(clip_norms), method, 0.01};
  }

  int num_groups() const { return static_cast<int>(group_clip_norms.size()); }

  // L2 sensitivity of the clipped sum to adding or removing one example.
  double sensitivity() const {
    double total = 0.0;
    for (const double c : group_clip_norms) total += c * c;
    return std::sqrt(total);
  }

  // Throws InvalidArgument naming the offending field.
  void validate() const {
    DPSGD_CHECK_ARG(!group_clip_norms.empty(), "group_clip_norms must hold at least one clip norm, got none");
    for (std::size_t k = 0; k < group_clip_norms.size(); ++k) {
      const double c = group_clip_norms[k];
      DPSGD_CHECK_ARG(std::isfinite(c) && c >= kMinClipNorm,
                      "group_clip_norms[" << k << "] must be finite and >= 1e-20, got " << c);
    }
    DPSGD_CHECK_ARG(method == ClipMethod::kHard || method == ClipMethod::kAutomatic,
                    "method must be ClipMethod::kHard or ClipMethod::kAutomatic, got " << static_cast<int>(method));
    DPSGD_CHECK_ARG(
        method != ClipMethod::kAutomatic || (std::isfinite(automatic_stability) && automatic_stability > 0.0),
        "automatic_stability must be finite and > 0, got " << automatic_stability);
  }
};

// The column offsets of the config's groups in a row of `width` elements: `group_offsets` checked
// (num_groups + 1 entries, strictly increasing from 0 to width), or {0, width} when it is empty.
// Throws InvalidArgument naming what is wrong.
inline std::vector<std::int64_t> resolve_group_offsets(std::span<const std::int64_t> group_offsets, std::int64_t width,
                                                       const ClipConfig& config) {
  std::vector<std::int64_t> offsets(group_offsets.begin(), group_offsets.end());
  if (offsets.empty()) offsets = {0, width};
  DPSGD_CHECK_ARG(
      static_cast<int>(offsets.size()) == config.num_groups() + 1,
      "group_offsets must have num_groups + 1 = " << config.num_groups() + 1 << " entries, got " << offsets.size());
  DPSGD_CHECK_ARG(offsets.front() == 0 && offsets.back() == width, "group_offsets must run from 0 to the row width "
                                                                       << width << ", got " << offsets.front() << " .. "
                                                                       << offsets.back());
  for (std::size_t k = 1; k < offsets.size(); ++k) {
    DPSGD_CHECK_ARG(offsets[k] > offsets[k - 1], "group_offsets must be strictly increasing, got "
                                                     << offsets[k - 1] << " then " << offsets[k] << " at " << k);
  }
  return offsets;
}

}  // namespace dpsgd

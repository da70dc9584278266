// ClipMethod and clip_factor: the factor each clipping method gives one example, on CPU and GPU alike.
#pragma once

#include <math.h>

#include <cstdint>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd {

enum class ClipMethod : int {
  // c = min(1, C / ||g||): the clipping of Abadi et al. 2016.
  kHard = 0,
  // c = C / (||g|| + gamma): automatic clipping (Bu et al. 2023, "Automatic clipping: differentially
  // private deep learning made easier and stronger"); ||c g|| < C for every g, so the sensitivity is
  // still C, and no threshold needs tuning when the learning rate absorbs C.
  kAutomatic = 1,
};

// The factor that scales example i's gradient (or one group of it) before summation. A padding
// slot (mask 0) and a non-finite norm both give 0: the row never reaches the sum.
DPSGD_HOST_DEVICE double clip_factor(double squared_norm, double clip_norm, ClipMethod method, double stability,
                                     std::uint8_t mask) {
  if (mask == 0 || !(squared_norm >= 0.0 && squared_norm < INFINITY)) return 0.0;
  const double norm = sqrt(squared_norm);
  if (method == ClipMethod::kAutomatic) return clip_norm / (norm + stability);
  return norm > clip_norm ? clip_norm / norm : 1.0;
}

}  // namespace dpsgd

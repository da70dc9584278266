// PldDirection: the two halves of add/remove adjacency, which differ for Poisson sampling.
#pragma once

namespace dpsgd {

// A guarantee under add/remove adjacency needs the larger epsilon (or delta) of the two.
enum class PldDirection : int {
  kRemove = 0,  // mu = (1 - q) N(0, s^2) + q N(-1, s^2) against N(0, s^2)
  kAdd = 1,     // N(0, s^2) against (1 - q) N(0, s^2) + q N(1, s^2)
};

}  // namespace dpsgd

// RealScalar: the element types dpsgd computes in (float and double), as one concept for every template.
#pragma once

#include <concepts>

namespace dpsgd {

// The noise, clipping and step code is written and tested for IEEE binary32 and binary64 only: their
// rounding bounds (clipping/detail/rounding_bounds.hpp) and the noise transform assume them.
template <typename Scalar>
concept RealScalar = std::same_as<Scalar, float> || std::same_as<Scalar, double>;

}  // namespace dpsgd

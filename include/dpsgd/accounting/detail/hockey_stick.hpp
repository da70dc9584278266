// Internal: hockey-stick divergences of the Gaussian and Poisson-subsampled Gaussian mechanisms in
// long double, each returned with a bound on its own rounding error.
#pragma once

#include "dpsgd/accounting/pld_direction.hpp"

namespace dpsgd::detail {

using Real = long double;

// A computed value and a bound on its absolute error: the exact value lies in
// [value - error, value + error]. upper() is what a pessimistic accountant uses.
struct BoundedValue {
  Real value = 0.0L;
  Real error = 0.0L;
  Real upper() const { return value + error; }
};

// Phi(x), the standard normal CDF, and log Phi(x), accurate far into the lower tail (no underflow
// for any finite x). e^(x^2) erfc(x) for x >= 0 (the scaled complementary error function).
Real normal_cdf(Real x);
Real log_normal_cdf(Real x);
Real scaled_erfc(Real x);

// delta(loss) = Phi(1/(2s) - s loss) - e^loss Phi(-1/(2s) - s loss): the hockey-stick divergence of
// N(0, s^2) against N(1, s^2) at e^loss, for any real loss (Balle & Wang 2018). Both terms are
// evaluated in long double, in log space where they would underflow, and the error bound covers the
// rounding of both terms and of their exponent arguments.
BoundedValue gaussian_hockey_stick(Real sigma, Real loss);

// The exact delta(epsilon) of one Poisson-subsampled Gaussian step in one direction of add/remove
// adjacency, through the Gaussian one:
//   remove: delta(eps) = q delta_G(log(1 + (e^eps - 1) / q))          (1 - e^eps when e^eps <= 1 - q)
//   add:    delta(eps) = (1 - e^eps (1 - q)) delta_G(eps + log q - log(1 - e^eps (1 - q)))
//                                                                      (0 when e^eps (1 - q) >= 1)
// Neither form overflows for large epsilon or tiny q. The loss handed to delta_G is lowered by a bound
// on its own rounding, so the result stays an upper bound (delta_G decreases in the loss).
BoundedValue subsampled_gaussian_hockey_stick(Real q, Real sigma, Real epsilon, PldDirection direction);

}  // namespace dpsgd::detail

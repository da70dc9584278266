// Hockey-stick divergences of the Gaussian and Poisson-subsampled Gaussian mechanisms, with error bounds.
#include "dpsgd/accounting/detail/hockey_stick.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dpsgd::detail {
namespace {

constexpr Real kSqrt2 = 1.41421356237309504880168872420969808L;
constexpr Real kSqrtPi = 1.77245385090551602729816748334114518L;
constexpr Real kLogHalf = -0.693147180559945309417232121458176568L;
constexpr Real kInvSqrt2Pi = 0.398942280401432677939946059934381868L;
// Unit roundoff of long double (64-bit significand).
constexpr Real kUnit = std::numeric_limits<Real>::epsilon() / 2;
// Relative error granted to one libm call (erfcl, expl, logl, log1pl, expm1l): glibc's long double
// functions are within a few ulp; 16 is generous.
constexpr Real kCall = 16 * kUnit;
// Below e^kLogTiny a term is taken as 0. Queries ask about deltas >= 1e-300 (doubles), and even 2^63
// steps of 2^26 grid points each cannot lift mass errors of e^-11000 anywhere near that.
constexpr Real kLogTiny = -11000.0L;

Real safe_exp(Real x) { return x < kLogTiny ? 0.0L : std::exp(x); }

// The direct branch of gaussian_hockey_stick in double precision, three to four times faster: used
// where both terms are comfortably inside double's range (a > -25, |loss| < 600) and sigma is not
// extreme, which covers the bulk of every grid. Same formulas and error accounting, in double's unit.
BoundedValue gaussian_hockey_stick_double(double sigma, double loss) {
  constexpr double kUnitD = std::numeric_limits<double>::epsilon() / 2;
  constexpr double kCallD = 16 * kUnitD;
  constexpr double kSqrt2D = 1.4142135623730951;
  const double inv = 1.0 / sigma;
  const double a0 = 0.5 * inv - sigma * loss;
  const double shift = 8.0 * kUnitD * (inv * inv + std::fabs(loss) + (std::fabs(a0) + inv) * inv);
  const double l = loss - shift;
  const double a = 0.5 * inv - sigma * l;
  const double b = -0.5 * inv - sigma * l;
  const double t1 = 0.5 * std::erfc(-a / kSqrt2D);
  const double log_phi_b =
      b > -30.0 ? std::log(0.5 * std::erfc(-b / kSqrt2D)) : static_cast<double>(log_normal_cdf(static_cast<Real>(b)));
  const double exponent = l + log_phi_b;
  const double t2 = exponent < -700.0 ? 0.0 : std::exp(exponent);
  BoundedValue result;
  result.value = std::max(0.0, t1 - t2);
  result.error = 2.0 * kCallD * t1 + t2 * (4.0 * kCallD + 4.0 * kUnitD * (std::fabs(l) + std::fabs(log_phi_b) + 1.0)) +
                 static_cast<double>(kInvSqrt2Pi) * std::exp(-0.5 * a * a) * 8.0 * kUnitD *
                     (inv + sigma * std::fabs(l) + std::fabs(a));
  // t2 below e^-700 was dropped: the value is then only larger.
  return result;
}

}  // namespace

Real normal_cdf(Real x) { return 0.5L * std::erfc(-x / kSqrt2); }

Real log_normal_cdf(Real x) {
  if (x > 0.0L) return std::log1p(-0.5L * std::erfc(x / kSqrt2));
  if (x > -30.0L) return std::log(0.5L * std::erfc(-x / kSqrt2));
  // Phi(x) = erfcx(y) e^(-y^2) / 2 with y = -x / sqrt(2): no underflow however far the tail.
  const Real y = -x / kSqrt2;
  return kLogHalf - y * y + std::log(scaled_erfc(y));
}

Real scaled_erfc(Real x) {
  if (x < 40.0L) return std::exp(x * x) * std::erfc(x);
  // Asymptotic series erfcx(x) = 1 / (x sqrt(pi)) sum_k (-1)^k (2k - 1)!! / (2 x^2)^k; at x >= 40 the
  // twelfth term is below 1e-29 relative.
  const Real inverse = 1.0L / (2.0L * x * x);
  Real term = 1.0L, sum = 1.0L;
  for (int k = 1; k <= 12; ++k) {
    term *= -static_cast<Real>(2 * k - 1) * inverse;
    sum += term;
  }
  return sum / (x * kSqrtPi);
}

BoundedValue gaussian_hockey_stick(Real sigma, Real loss) {
  if (sigma > 1e-4L && sigma < 1e4L && std::fabs(loss) < 600.0L && 0.5L / sigma - sigma * loss > -25.0L)
    return gaussian_hockey_stick_double(static_cast<double>(sigma), static_cast<double>(loss));
  const Real inv = 1.0L / sigma;
  // The computed threshold a (and b = a - 1/sigma) carries rounding of a few ulps of |a| + 1/sigma;
  // a moves by sigma per unit of loss, so the value computed is the divergence at a loss within
  // `shift` of the requested one. Evaluating at loss - shift keeps the result above delta(loss), since
  // delta decreases in the loss. (The shift scales as 1/sigma^2 + |loss|: at sigma 1e300 it stays tiny.)
  const Real a0 = 0.5L * inv - sigma * loss;
  const Real shift = 8.0L * kUnit * (inv * inv + std::fabs(loss) + (std::fabs(a0) + inv) * inv);
  const Real l = loss - shift;
  const Real a = 0.5L * inv - sigma * l;
  const Real b = -0.5L * inv - sigma * l;
  BoundedValue result;
  if (a > -30.0L) {
    const Real t1 = normal_cdf(a);
    const Real log_phi_b = log_normal_cdf(b);
    const Real t2 = safe_exp(l + log_phi_b);
    result.value = std::max(0.0L, t1 - t2);
    // t1: one call; t2: two calls and the rounding of its exponent; a and b computed separately put
    // the two terms at slightly mismatched thresholds, which moves the difference by phi(a) |db|.
    result.error = 2.0L * kCall * t1 +
                   t2 * (4.0L * kCall + 4.0L * kUnit * (std::fabs(l) + std::fabs(log_phi_b) + 1.0L)) +
                   kInvSqrt2Pi * safe_exp(-0.5L * a * a) * 8.0L * kUnit * (inv + sigma * std::fabs(l) + std::fabs(a));
    return result;
  }
  // Both terms in the lower tail. With Phi(x) = e^(-x^2/2) erfcx(-x/sqrt 2) / 2 and the identity
  // l - b^2/2 = -a^2/2, delta = e^(-a^2/2) (erfcx(-a/sqrt 2) - erfcx(-b/sqrt 2)) / 2: no cancellation
  // of two underflowing terms, only of two moderate ones.
  const Real fa = scaled_erfc(-a / kSqrt2);
  const Real fb = scaled_erfc(-b / kSqrt2);
  const Real log_front = kLogHalf - 0.5L * a * a;
  if (!(fa > fb)) {
    // The difference is lost in rounding: bound it by the larger term.
    result.error = safe_exp(log_front) * 2.0L * fa;
    return result;
  }
  const Real difference = fa - fb;
  result.value = safe_exp(log_front + std::log(difference));
  result.error = result.value * (4.0L * kCall * (fa + fb) / difference + 8.0L * kUnit * (0.5L * a * a + 1.0L));
  return result;
}

BoundedValue subsampled_gaussian_hockey_stick(Real q, Real sigma, Real epsilon, PldDirection direction) {
  if (q >= 1.0L) return gaussian_hockey_stick(sigma, epsilon);
  if (direction == PldDirection::kRemove) {
    // e^loss = (e^eps - 1 + q) / q.
    Real loss;
    if (epsilon > 40.0L) {
      loss = epsilon - std::log(q) + std::log1p(-(1.0L - q) * std::exp(-epsilon));
    } else {
      const Real x = std::expm1(epsilon) / q;
      if (!(x > -1.0L)) {
        // e^eps <= 1 - q: every outcome of the subsampled part exceeds the loss.
        const Real value = -std::expm1(epsilon);
        return {value, 2.0L * kCall * value};
      }
      loss = std::log1p(x);
    }
    // The loss carries a few roundings; |d loss| <= 4u (1 + |loss| + |eps| + 1 / (1 + x)) covers them
    // (the last term matters only where e^loss is tiny and delta_G is flat at 1).
    const Real uncertainty =
        8.0L * kUnit * (1.0L + std::fabs(loss) + std::fabs(epsilon) + std::fabs(std::log(q)) + safe_exp(-loss));
    const BoundedValue g = gaussian_hockey_stick(sigma, loss - uncertainty);
    return {q * g.value, q * g.error + 4.0L * kUnit * q * g.value};
  }
  // Add: 1 - e^eps (1 - q) = -expm1(w) with w = eps + log(1 - q).
  const Real w = epsilon + std::log1p(-q);
  if (w >= 0.0L) return {};  // the add-direction loss never exceeds -log(1 - q)
  const Real prefactor = -std::expm1(w);
  const Real loss = epsilon + std::log(q) - std::log(prefactor);
  // Relative error of the prefactor: the rounding of w (absolute, |eps| + |log(1 - q)| ulps)
  // amplified by e^w / (1 - e^w), plus the call itself.
  const Real prefactor_error =
      2.0L * kCall + 4.0L * kUnit * (std::fabs(epsilon) + std::fabs(std::log1p(-q)) + 1.0L) * std::exp(w) / prefactor;
  const Real uncertainty =
      8.0L * kUnit * (1.0L + std::fabs(loss) + std::fabs(epsilon) + std::fabs(std::log(q))) + 2.0L * prefactor_error;
  const BoundedValue g = gaussian_hockey_stick(sigma, loss - uncertainty);
  const Real value = prefactor * g.value;
  return {value, prefactor * g.error + 2.0L * prefactor_error * value};
}

}  // namespace dpsgd::detail

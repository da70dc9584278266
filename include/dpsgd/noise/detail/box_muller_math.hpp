// log(u) and sin/cos(2 pi u) for u in (0, 1), written for the Box-Muller transform: branch-free
// polynomials on exact range reductions, so that one definition runs in the scalar CPU path, the
// vectorised CPU path (compilers vectorise it: no calls, no branches, no int64-to-double converts)
// and the CUDA kernels, with identical results on the CPU whatever the vector width. Accurate to
// about 2 ulp (tests/noise_test.cpp compares them with the C library over millions of points).
#pragma once

#include <cstdint>
#include <cstring>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd::detail {

DPSGD_HOST_DEVICE std::uint64_t double_bits(double x) {
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

DPSGD_HOST_DEVICE double double_from_bits(std::uint64_t bits) {
  double x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// An integer 0 <= n < 2^52 as a double, through the exponent field (x86 before AVX-512 has no
// vector int64-to-double conversion): 2^52 + n is exactly the double with mantissa n.
DPSGD_HOST_DEVICE double small_uint_to_double(std::uint64_t n) {
  return double_from_bits(0x4330000000000000ULL | n) - 4503599627370496.0;
}

// Natural log of a positive normal double u. u = m 2^e with m in [sqrt(1/2), sqrt(2)), found with
// integer arithmetic on the bits (adding the distance from sqrt(1/2)'s mantissa to 1 carries into
// the exponent exactly when the mantissa is at least sqrt(2)'s), so there is no branch or select for
// a vectoriser to trip on. log(m) = 2 atanh(s) with s = (m - 1) / (m + 1), |s| <= 0.172, summed as
// the odd series of atanh to s^19 (the first term left out, 2 s^21 / 21, is below 3e-17 of log m),
// and e ln 2 in two parts so that e * ln2_hi is exact.
DPSGD_HOST_DEVICE double log_positive(double u) {
  constexpr std::uint64_t kSqrtHalfBits = 0x3FE6A09E667F3BCDULL;  // sqrt(1/2)
  const std::uint64_t shifted = double_bits(u) + (0x3FF0000000000000ULL - kSqrtHalfBits);
  const double e = small_uint_to_double(shifted >> 52) - 1023.0;
  const double m = double_from_bits((shifted & 0x000FFFFFFFFFFFFFULL) + kSqrtHalfBits);
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 1.0 / 19.0;
  p = p * s2 + 1.0 / 17.0;
  p = p * s2 + 1.0 / 15.0;
  p = p * s2 + 1.0 / 13.0;
  p = p * s2 + 1.0 / 11.0;
  p = p * s2 + 1.0 / 9.0;
  p = p * s2 + 1.0 / 7.0;
  p = p * s2 + 1.0 / 5.0;
  p = p * s2 + 1.0 / 3.0;
  const double log_m = 2.0 * s + 2.0 * s * (s2 * p);
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 to 32 bits: e * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;  // ln 2 - kLn2Hi
  return e * kLn2Hi + (log_m + e * kLn2Lo);
}

// sin(2 pi u) and cos(2 pi u) for u in [0, 1). 4u = q + r with q the nearest integer (through the
// 1.5 * 2^52 rounding trick) and |r| <= 1/2, both exact; theta = r pi / 2 lies in [-pi/4, pi/4],
// where the Taylor series to theta^15 (sin) and theta^16 (cos) are off by less than 7e-17 and
// 2e-18 (the first terms left out); the quadrant q then swaps and negates.
DPSGD_HOST_DEVICE void sincos_two_pi(double u, double& sine, double& cosine) {
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  const double t = 4.0 * u;
  const double shifted = t + kRound;
  const std::uint64_t quadrant = double_bits(shifted) & 3u;
  const double r = t - (shifted - kRound);
  const double theta = r * 1.57079632679489661923;
  const double x2 = theta * theta;
  double ps = 1.0 / 1307674368000.0;                 // 1/15!
  ps = ps * x2 - 1.0 / 6227020800.0;                 // -1/13!
  ps = ps * x2 + 1.0 / 39916800.0;                   // 1/11!
  ps = ps * x2 - 1.0 / 362880.0;                     // -1/9!
  ps = ps * x2 + 1.0 / 5040.0;                       // 1/7!
  ps = ps * x2 - 1.0 / 120.0;                        // -1/5!
  ps = ps * x2 + 1.0 / 6.0;                          // 1/3!
  const double s = theta - theta * x2 * ps;          // theta - theta^3/3! + ...
  double pc = -1.0 / 20922789888000.0;               // -1/16!
  pc = pc * x2 + 1.0 / 87178291200.0;                // 1/14!
  pc = pc * x2 - 1.0 / 479001600.0;                  // -1/12!
  pc = pc * x2 + 1.0 / 3628800.0;                    // 1/10!
  pc = pc * x2 - 1.0 / 40320.0;                      // -1/8!
  pc = pc * x2 + 1.0 / 720.0;                        // 1/6!
  pc = pc * x2 - 1.0 / 24.0;                         // -1/4!
  const double c = (1.0 - 0.5 * x2) - x2 * x2 * pc;  // 1 - x^2/2 + x^4/4! - ...
  // The quadrant's swap and sign changes as bit masks rather than selects, again for the vectoriser.
  const std::uint64_t swap = 0 - (quadrant & 1u);  // all ones in odd quadrants
  const std::uint64_t s_bits = double_bits(s), c_bits = double_bits(c);
  const std::uint64_t sin_bits = (s_bits & ~swap) | (c_bits & swap);
  const std::uint64_t cos_bits = (c_bits & ~swap) | (s_bits & swap);
  sine = double_from_bits(sin_bits ^ ((quadrant & 2u) << 62));
  cosine = double_from_bits(cos_bits ^ (((quadrant + 1u) & 2u) << 62));
}

}  // namespace dpsgd::detail

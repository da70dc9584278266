// Tests of the shared Philox4x32-10 generator and the bits-to-Gaussian transform.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "dpsgd/noise/gaussian_transform.hpp"
#include "dpsgd/noise/philox.hpp"

namespace dpsgd {
namespace {

void expect_block(PhiloxCounter got, std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
  EXPECT_EQ(got.v[0], a);
  EXPECT_EQ(got.v[1], b);
  EXPECT_EQ(got.v[2], c);
  EXPECT_EQ(got.v[3], d);
}

// Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds).
TEST(Philox, MatchesRandom123KnownAnswers) {
  expect_block(philox4x32_10(PhiloxCounter{{0, 0, 0, 0}}, PhiloxKey{{0, 0}}), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c,
               0x9b00dbd8);
  expect_block(philox4x32_10(PhiloxCounter{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
                             PhiloxKey{{0xffffffff, 0xffffffff}}),
               0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
  expect_block(philox4x32_10(PhiloxCounter{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
                             PhiloxKey{{0xa4093822, 0x299f31d0}}),
               0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

TEST(Philox, SeedSplitsLowWordFirst) {
  const PhiloxKey key = philox_key_from_seed(0x0123456789abcdefULL);
  EXPECT_EQ(key.v[0], 0x89abcdefu);
  EXPECT_EQ(key.v[1], 0x01234567u);
}

TEST(Philox, DomainsGiveDistinctKeys) {
  std::set<std::uint64_t> keys;
  for (std::uint64_t seed : {0ULL, 1ULL, 42ULL, ~0ULL}) {
    for (RandomDomain domain : {RandomDomain::kGaussianNoise, RandomDomain::kPoissonSampler}) {
      const PhiloxKey k = derive_philox_key(seed, domain);
      keys.insert((static_cast<std::uint64_t>(k.v[1]) << 32) | k.v[0]);
    }
  }
  EXPECT_EQ(keys.size(), 8u);
}

TEST(GaussianTransform, UniformNeverReachesZeroOrOne) {
  EXPECT_EQ(uniform_open_from_bits(0, 0), 0x1.0p-53);
  EXPECT_EQ(uniform_open_from_bits(0xffffffff, 0xffffffff), 1.0 - 0x1.0p-53);
  EXPECT_LT(uniform_open_from_bits(0xffffffff, 0xffffffff), 1.0);
  EXPECT_EQ(uniform_open_from_bits(0x80000000, 0), 0.5 + 0x1.0p-53);
}

TEST(GaussianTransform, BoxMullerOfKnownBits) {
  // u1 = 1/2 + 2^-53 and u2 = 1/4 + 2^-53 give radius sqrt(2 ln 2) and angle ~pi/2.
  double z0, z1;
  box_muller(PhiloxCounter{{0x80000000, 0, 0x40000000, 0}}, z0, z1);
  EXPECT_NEAR(z0, 0.0, 1e-12);
  EXPECT_NEAR(z1, std::sqrt(2.0 * std::log(2.0)), 1e-12);
  // The largest radius the transform can produce: the tail reaches 8.57 standard deviations.
  box_muller(PhiloxCounter{{0, 0, 0, 0}}, z0, z1);
  EXPECT_NEAR(z0, std::sqrt(2.0 * 53.0 * std::log(2.0)), 1e-9);
}

TEST(GaussianTransform, LogAndSinCosAreWithinAFewUlpOfTheCLibrary) {
  // The branch-free log and sin/cos of box_muller_math.hpp against long-double libm, over the
  // uniforms' whole range: the extremes 2^-53 and 1 - 2^-53, the range-reduction boundaries
  // (sqrt(1/2), quadrant edges), and a million points spread over the exponents.
  std::vector<double> points = {0x1.0p-53,          1.0 - 0x1.0p-53,   0.5,    0.25,    0.75, 0.7071067811865476,
                                0.7071067811865475, 0.125 + 0x1.0p-53, 1e-300, 0.999999};
  std::uint64_t state = 12345;
  for (int i = 0; i < 1000000; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    points.push_back(
        uniform_open_from_bits(static_cast<std::uint32_t>(state >> 32), static_cast<std::uint32_t>(state)) *
        std::ldexp(1.0, -static_cast<int>(i % 50)));
  }
  double worst_log_ulps = 0.0, worst_sincos = 0.0;
  for (double u : points) {
    const long double exact_log = std::log(static_cast<long double>(u));
    const double ulp =
        std::nextafter(std::abs(static_cast<double>(exact_log)), INFINITY) - std::abs(static_cast<double>(exact_log));
    worst_log_ulps = std::max(worst_log_ulps, static_cast<double>(std::abs(detail::log_positive(u) - exact_log)) / ulp);
    if (u >= 1.0) continue;
    double sine, cosine;
    detail::sincos_two_pi(u, sine, cosine);
    const long double angle = 6.283185307179586476925286766559L * static_cast<long double>(u);
    worst_sincos = std::max(worst_sincos, static_cast<double>(std::abs(sine - std::sin(angle))));
    worst_sincos = std::max(worst_sincos, static_cast<double>(std::abs(cosine - std::cos(angle))));
  }
  EXPECT_LE(worst_log_ulps, 2.0);
  EXPECT_LT(worst_sincos, 4e-16);  // |sin|, |cos| <= 1: about 2 ulp of 1
}

TEST(GaussianTransform, SecureModeAveragesFourNormals) {
  const NoiseKey key{7, 3, 1};
  const PhiloxKey philox = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
  for (std::uint64_t c : {0ULL, 1ULL, 1000ULL}) {
    const double expected =
        0.5 * ((standard_normal_at(philox, key, 4 * c) + standard_normal_at(philox, key, 4 * c + 1)) +
               (standard_normal_at(philox, key, 4 * c + 2) + standard_normal_at(philox, key, 4 * c + 3)));
    EXPECT_DOUBLE_EQ(unit_noise_at(philox, key, NoiseMode::kSecure, c), expected);
  }
  EXPECT_EQ(normals_per_coordinate(NoiseMode::kSecure), 4);
  EXPECT_EQ(normals_per_coordinate(NoiseMode::kStandard), 1);
}

TEST(GaussianTransform, CounterLayoutSeparatesStepStreamAndBlock) {
  const PhiloxCounter c = noise_counter(NoiseKey{0, 0x0000000500000003ULL, 9}, 11);
  EXPECT_EQ(c.v[0], 11u);
  EXPECT_EQ(c.v[1], 9u);
  EXPECT_EQ(c.v[2], 3u);
  EXPECT_EQ(c.v[3], 5u);
}

}  // namespace
}  // namespace dpsgd

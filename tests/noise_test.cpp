// Tests of add_gaussian_noise: determinism across threads, offsets, precisions, and bad arguments.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dpsgd/noise/gaussian_noise.hpp"
#include "dpsgd/noise/noise_streams.hpp"
#include "dpsgd/noise/secure_seed.hpp"

namespace dpsgd {
namespace {

template <typename Scalar>
std::vector<Scalar> noise_with_threads(int threads, std::size_t size, NoiseMode mode) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  std::vector<Scalar> values(size, Scalar{0});
  add_gaussian_noise<Scalar>(values, 1.5, NoiseKey{1234, 77, 2}, mode);
  omp_set_num_threads(saved);
  return values;
}

TEST(GaussianNoise, BitIdenticalForOneAndTwoThreads) {
  for (NoiseMode mode : {NoiseMode::kStandard, NoiseMode::kSecure}) {
    const auto one = noise_with_threads<float>(1, 300001, mode);
    const auto two = noise_with_threads<float>(2, 300001, mode);
    EXPECT_EQ(one, two);
    const auto one_d = noise_with_threads<double>(1, 100003, mode);
    const auto two_d = noise_with_threads<double>(2, 100003, mode);
    EXPECT_EQ(one_d, two_d);
  }
}

TEST(GaussianNoise, ValueDependsOnlyOnKeyAndCoordinate) {
  // Noising a buffer in two pieces with first_coordinate gives exactly the noise of one piece,
  // including splits at odd coordinates (Box-Muller produces values in pairs).
  std::vector<double> whole(1001, 0.0);
  const NoiseKey key{99, 5, 0};
  add_gaussian_noise<double>(whole, 2.0, key);
  for (std::size_t split : {0u, 1u, 2u, 333u, 1000u, 1001u}) {
    std::vector<double> parts(1001, 0.0);
    add_gaussian_noise<double>(std::span<double>(parts).first(split), 2.0, key, NoiseMode::kStandard, 0);
    add_gaussian_noise<double>(std::span<double>(parts).subspan(split), 2.0, key, NoiseMode::kStandard, split);
    EXPECT_EQ(parts, whole) << "split at " << split;
  }
}

TEST(GaussianNoise, FloatIsTheRoundedDoubleNoise) {
  std::vector<float> f(4097, 0.0f);
  std::vector<double> d(4097, 0.0);
  const NoiseKey key{5, 6, 7};
  add_gaussian_noise<float>(f, 0.75, key);
  add_gaussian_noise<double>(d, 0.75, key);
  for (std::size_t i = 0; i < f.size(); ++i) ASSERT_EQ(f[i], static_cast<float>(d[i])) << i;
}

TEST(GaussianNoise, Avx512KernelGivesThePortableKernelsBits) {
  if (!detail::standard_normal_blocks_use_avx512()) {
    GTEST_SKIP() << "this CPU has no AVX-512F/DQ: only the portable noise kernel runs here";
  }
  const NoiseKey key{31, 0x1'0000'0002ULL, 9};
  const PhiloxKey philox = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
  // Counts that are and are not multiples of the kernels' widths (8 and 64 blocks), and a range
  // that ends at the last block of the stream (the 32-bit block counter must not carry).
  for (std::uint32_t first : {0u, 5u, 1000003u, 0xFFFFFFFFu - 300u}) {
    for (std::uint32_t count : {1u, 7u, 8u, 9u, 64u, 65u, 301u}) {
      std::vector<double> vector_out(2 * count), portable_out(2 * count);
      detail::standard_normal_blocks(philox, key, first, count, vector_out.data());
      detail::portable_standard_normal_blocks(philox, key, first, count, portable_out.data());
      ASSERT_EQ(vector_out, portable_out) << "first block " << first << ", count " << count;
    }
  }
}

TEST(GaussianNoise, KernelMatchesBoxMullerWithTheCLibrary) {
  // Reference: Box-Muller with std::log, std::sqrt, std::cos, std::sin on the same 52-bit
  // uniforms. The library's own log and sin/cos are within a few ulp; the reference's 2 pi u
  // itself rounds (up to 4.4e-16 of 2 pi), so the bound is 1e-14 absolute on values up to 8.6.
  const NoiseKey key{2024, 11, 3};
  const PhiloxKey philox = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
  constexpr std::uint32_t kBlocks = 1 << 18;
  std::vector<double> out(2 * kBlocks);
  detail::standard_normal_blocks(philox, key, 0, kBlocks, out.data());
  double worst = 0.0;
  for (std::uint32_t b = 0; b < kBlocks; ++b) {
    const PhiloxCounter bits = philox4x32_10(noise_counter(key, b), philox);
    const double u1 = uniform_open_from_bits(bits.v[0], bits.v[1]);
    const double u2 = uniform_open_from_bits(bits.v[2], bits.v[3]);
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 6.283185307179586476925 * u2;
    worst = std::max(worst, std::abs(out[2 * b] - radius * std::cos(angle)));
    worst = std::max(worst, std::abs(out[2 * b + 1] - radius * std::sin(angle)));
  }
  EXPECT_LT(worst, 1e-14);
}

TEST(GaussianNoise, ScaledNoiseEqualsNoiseThenMultiply) {
  // The DP step's fused pass must give the bits of the two separate passes, in both modes and
  // with the OpenMP team (300,001 coordinates) or without it.
  for (NoiseMode mode : {NoiseMode::kStandard, NoiseMode::kSecure}) {
    for (std::size_t size : {std::size_t{1001}, std::size_t{300001}}) {
      std::vector<float> separate(size, 0.25f), fused(size, 0.25f);
      add_gaussian_noise<float>(separate, 1.3, NoiseKey{8, 9, 1}, mode, 5);
      for (auto& v : separate) v *= 1.0f / 256.0f + 1e-3f;
      add_scaled_gaussian_noise<float>(fused, 1.3, NoiseKey{8, 9, 1}, mode, 5, 1.0f / 256.0f + 1e-3f);
      EXPECT_EQ(separate, fused);
    }
  }
  std::vector<double> values(10, 2.0);
  add_scaled_gaussian_noise<double>(values, 0.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, 0,
                                    0.5);  // no noise: scale only
  EXPECT_EQ(values, std::vector<double>(10, 1.0));
  EXPECT_THROW(add_scaled_gaussian_noise<double>(values, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, 0, -1.0),
               InvalidArgument);
  EXPECT_THROW(add_scaled_gaussian_noise<double>(values, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, 0, NAN),
               InvalidArgument);
}

TEST(GaussianNoise, AddsToExistingValuesAndScalesWithStddev) {
  std::vector<double> base(64, 10.0), unit(64, 0.0), scaled(64, 10.0);
  const NoiseKey key{1, 2, 3};
  add_gaussian_noise<double>(unit, 1.0, key);
  add_gaussian_noise<double>(scaled, 3.0, key);
  for (std::size_t i = 0; i < base.size(); ++i) EXPECT_DOUBLE_EQ(scaled[i], 10.0 + 3.0 * unit[i]);
}

TEST(GaussianNoise, ZeroStddevAndEmptyBufferChangeNothing) {
  std::vector<float> values{1.0f, -2.0f, 3.0f};
  add_gaussian_noise<float>(values, 0.0, NoiseKey{0, 0, 0});
  EXPECT_EQ(values, (std::vector<float>{1.0f, -2.0f, 3.0f}));
  std::vector<float> empty;
  EXPECT_NO_THROW(add_gaussian_noise<float>(empty, 1.0, NoiseKey{0, 0, 0}));
}

TEST(GaussianNoise, DifferentStepsStreamsAndSeedsDiffer) {
  const auto draw = [](NoiseKey key) {
    std::vector<double> v(8, 0.0);
    add_gaussian_noise<double>(v, 1.0, key);
    return v;
  };
  const auto base = draw({1, 1, 1});
  EXPECT_NE(base, draw({2, 1, 1}));
  EXPECT_NE(base, draw({1, 2, 1}));
  EXPECT_NE(base, draw({1, 1, 2}));
  EXPECT_NE(base, draw({1, std::uint64_t{1} << 32 | 1, 1}));  // high word of the step counts too
}

TEST(GaussianNoise, RejectsBadArguments) {
  std::vector<float> values(4, 0.0f);
  for (double bad : {-1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(add_gaussian_noise<float>(values, bad, NoiseKey{0, 0, 0}), InvalidArgument) << bad;
  }
  EXPECT_THROW(add_gaussian_noise<float>(values, 1.0, NoiseKey{0, 0, 0}, static_cast<NoiseMode>(7)), InvalidArgument);
  // Coordinates past the 2^33 normals of one stream would wrap the block counter and repeat noise.
  EXPECT_THROW(
      add_gaussian_noise<float>(values, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, (std::uint64_t{1} << 33) - 2),
      InvalidArgument);
  EXPECT_THROW(
      add_gaussian_noise<float>(values, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kSecure, (std::uint64_t{1} << 31) - 2),
      InvalidArgument);
  EXPECT_NO_THROW(
      add_gaussian_noise<float>(values, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, (std::uint64_t{1} << 33) - 4));
  try {
    add_gaussian_noise<float>(values, -2.5, NoiseKey{0, 0, 0});
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("stddev"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("-2.5"), std::string::npos) << e.what();
  }
}

TEST(SecureSeed, DrawsDistinctSeeds) {
  // Two equal 64-bit draws from the CSPRNG: probability 2^-64, a failure means a broken source.
  EXPECT_NE(secure_random_seed(), secure_random_seed());
}

// Two tensors of one step must never share noise. The raw call with one key gives both the same
// vector (the hazard, shown first as a negative control); NoiseStreams and the multi-tensor call give
// each tensor its own stream, the same numbers as raw calls on streams 0, 1, ...
TEST(NoiseStreams, EveryTensorGetsAStreamOfItsOwn) {
  std::vector<double> a(1000, 0.0), b(1000, 0.0);
  add_gaussian_noise<double>(a, 1.0, NoiseKey{3, 4, 0});
  add_gaussian_noise<double>(b, 1.0, NoiseKey{3, 4, 0});
  EXPECT_EQ(a, b);  // same key: same noise

  std::vector<double> x(1000, 0.0), y(1000, 0.0), z(37, 0.0);
  NoiseStreams streams(3, 4);
  streams.add<double>(x, 1.0);
  streams.add<double>(y, 1.0);
  streams.add<double>(z, 2.0);
  EXPECT_EQ(streams.used(), 3u);
  EXPECT_EQ(x, a);  // stream 0
  EXPECT_NE(x, y);
  std::vector<double> expected_y(1000, 0.0), expected_z(37, 0.0);
  add_gaussian_noise<double>(expected_y, 1.0, NoiseKey{3, 4, 1});
  add_gaussian_noise<double>(expected_z, 2.0, NoiseKey{3, 4, 2});
  EXPECT_EQ(y, expected_y);
  EXPECT_EQ(z, expected_z);
  // Independent, not merely different: the correlation of the two tensors' noise is about 0
  // (|r| < 0.15 fails with probability 2e-6 for 1000 independent pairs).
  double xy = 0.0, xx = 0.0, yy = 0.0;
  for (std::size_t j = 0; j < x.size(); ++j) {
    xy += x[j] * y[j];
    xx += x[j] * x[j];
    yy += y[j] * y[j];
  }
  EXPECT_LT(std::abs(xy / std::sqrt(xx * yy)), 0.15);

  std::vector<double> p(1000, 0.0), q(1000, 0.0), r(37, 0.0);
  const std::vector<std::span<double>> tensors{p, q, r};
  add_gaussian_noise<double>(tensors, 1.0, 3, 4);
  EXPECT_EQ(p, x);
  EXPECT_EQ(q, y);
  EXPECT_NE(r, z);  // stddev 1, not 2
}

TEST(NoiseStreams, KeysAreTakenOnceAndRunOut) {
  NoiseStreams streams(1, 2, NoiseMode::kSecure, 0xFFFFFFFEu);
  EXPECT_EQ(streams.take().stream, 0xFFFFFFFEu);
  EXPECT_EQ(streams.take().stream, 0xFFFFFFFFu);
  EXPECT_THROW(streams.take(), InvalidArgument);
  EXPECT_THROW(NoiseStreams(1, 2, static_cast<NoiseMode>(5)), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

// Tests of channel whitening: the per-example moment row and the bound its clip norm relies on
// (adversarial rows included), the whitening matrix of exact and of noisy moments (the floor bounds
// its gain), its application per pixel, and the refusals.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/features/channel_whitening.hpp"
#include "dpsgd/features/group_normalisation.hpp"
#include "dpsgd/optim/sum_release.hpp"

namespace dpsgd {
namespace {

double squared_norm(const std::vector<float>& v) {
  double s = 0.0;
  for (const float x : v) s += static_cast<double>(x) * x;
  return s;
}

double norm(const std::vector<double>& v) {
  long double s = 0.0L;
  for (const double x : v) s += static_cast<long double>(x) * x;
  return static_cast<double>(std::sqrt(s));
}

TEST(ChannelMomentRow, IsTheUpperTriangleOfTheSumOfOuterProducts) {
  // Two pixels of three channels: (1, 2, 3) and (-1, 0, 4).
  const std::vector<float> features{1, 2, 3, -1, 0, 4};
  std::vector<double> row(static_cast<std::size_t>(channel_moment_dimension(3)));
  ASSERT_EQ(row.size(), 6u);
  channel_moment_row(features, 3, row);
  // S = [[2, 2, -1], [2, 4, 6], [-1, 6, 25]]: (0,0) (0,1) (0,2) (1,1) (1,2) (2,2).
  EXPECT_EQ(row, (std::vector<double>{2, 2, -1, 4, 6, 25}));
}

// ||row|| <= ||x||^2 is what lets the clip norm be the feature count: checked on rows that reach it
// (rank one), with huge, tiny and cancelling values, and on random ones.
TEST(ChannelMomentRow, ItsNormIsAtMostTheSquaredFeatureNormForAnyRow) {
  const std::int64_t channels = 9, pixels = 49;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> rows;
  std::vector<float> rank_one(channels * pixels), huge(channels * pixels), tiny(channels * pixels),
      offset(channels * pixels), random(channels * pixels);
  for (std::int64_t p = 0; p < pixels; ++p)
    for (std::int64_t c = 0; c < channels; ++c) {
      const auto k = static_cast<std::size_t>(p * channels + c);
      rank_one[k] = static_cast<float>(p + 1) * static_cast<float>(c % 3 + 1);  // every pixel one direction
      huge[k] = (c % 2 == 0 ? 1.0f : -1.0f) * 3e38f;
      tiny[k] = 1e-40f * static_cast<float>(c + 1);  // subnormal floats
      offset[k] = 1e4f + (c % 2 == 0 ? 1e-3f : -1e-3f);
      random[k] = normal(rng);
    }
  std::vector<double> row(static_cast<std::size_t>(channel_moment_dimension(channels)));
  for (const auto* features : {&rank_one, &huge, &tiny, &offset, &random}) {
    channel_moment_row(*features, channels, row);
    const double bound = squared_norm(*features);
    EXPECT_LE(norm(row), bound * (1.0 + 1e-12)) << "row " << (features - &rank_one);
  }
  channel_moment_row(rank_one, channels, row);  // the bound is reached: an off-diagonal term counts once
  const double full = std::sqrt(2.0 * norm(row) * norm(row));
  EXPECT_GT(full, squared_norm(rank_one) * 0.99);  // the full Frobenius norm is within 1% of the bound
}

// Group-normalised rows, clipped to the feature count in a release, are not clipped at all: the
// released sum is their plain sum. Clipping to half the smallest row's norm changes it (the control).
TEST(ChannelMomentRow, TheFeatureCountClipsNoGroupNormalisedRow) {
  const std::int64_t channels = 6, pixels = 49, features = channels * pixels, n = 50;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal;
  RowMajorMatrix<float> x(n, features);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng) * (i % 7 == 0 ? 50.0f : 1.0f) + 3.0f;
  group_normalise_rows(x, channels, 2);
  const RowSource source = [&](std::int64_t i, std::span<double> row) {
    channel_moment_row({x.row(i).data(), static_cast<std::size_t>(features)}, channels, row);
  };
  const std::int64_t dimension = channel_moment_dimension(channels);
  std::vector<double> plain(static_cast<std::size_t>(dimension), 0.0), row(plain.size());
  double smallest = std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < n; ++i) {
    source(i, row);
    for (std::size_t k = 0; k < row.size(); ++k) plain[k] += row[k];
    EXPECT_LE(norm(row), static_cast<double>(features));
    smallest = std::min(smallest, norm(row));
  }
  // clipped_sum adds no noise (the multiplier is only validated).
  const auto released = clipped_sum(
      {.dimension = dimension, .clip_norm = static_cast<double>(features), .noise_multiplier = 1.0}, n, source);
  for (std::size_t k = 0; k < plain.size(); ++k) EXPECT_NEAR(released[k], plain[k], 1e-9 * std::abs(plain[k]) + 1e-9);
  const auto halved =
      clipped_sum({.dimension = dimension, .clip_norm = smallest / 2.0, .noise_multiplier = 1.0}, n, source);
  EXPECT_LT(norm(halved), 0.9 * norm(plain));
}

// Correlated channels (c = A z): the whitening of their exact moments gives W M W = I.
TEST(ChannelWhitening, WhitensExactMoments) {
  const std::int64_t channels = 5, pixels = 2000;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd mix(channels, channels);
  for (Eigen::Index i = 0; i < mix.size(); ++i) mix.data()[i] = normal(rng);
  mix += 3.0 * Eigen::MatrixXd::Identity(channels, channels);
  std::vector<float> features(static_cast<std::size_t>(channels * pixels));
  for (std::int64_t p = 0; p < pixels; ++p) {
    Eigen::VectorXd z(channels);
    for (auto& v : z) v = normal(rng);
    const Eigen::VectorXd c = mix * z;
    for (std::int64_t k = 0; k < channels; ++k)
      features[static_cast<std::size_t>(p * channels + k)] = static_cast<float>(c(k));
  }
  std::vector<double> released(static_cast<std::size_t>(channel_moment_dimension(channels)));
  channel_moment_row(features, channels, released);
  const RowMajorMatrix<float> w = channel_whitening(released, channels, static_cast<double>(pixels), 1e-9);
  EXPECT_TRUE(w.isApprox(w.transpose(), 1e-6f));

  RowMajorMatrix<float> rows = Eigen::Map<RowMajorMatrix<float>>(features.data(), 1, channels * pixels);
  whiten_channels(rows, w);
  const Eigen::Map<RowMajorMatrix<float>> white(rows.data(), pixels, channels);
  const Eigen::MatrixXd moment = white.cast<double>().transpose() * white.cast<double>() / static_cast<double>(pixels);
  EXPECT_TRUE(moment.isApprox(Eigen::MatrixXd::Identity(channels, channels), 1e-4)) << moment;
  // Not whitened (the control): the raw moments are far from the identity.
  const Eigen::Map<RowMajorMatrix<float>> raw(features.data(), pixels, channels);
  EXPECT_FALSE((raw.cast<double>().transpose() * raw.cast<double>() / static_cast<double>(pixels))
                   .isApprox(Eigen::MatrixXd::Identity(channels, channels), 0.1));
}

// Noise can make the released matrix indefinite: W stays finite and its gain is at most floor^(-1/2).
TEST(ChannelWhitening, TheFloorBoundsTheGainEvenForNegativeEigenvalues) {
  // M = [[1, 0, 2], [0, -5, 0], [2, 0, 1]] (eigenvalues 3, -1, -5), count 1.
  const std::vector<double> released{1, 0, 2, -5, 0, 1};
  for (const double floor : {1e-6, 0.1, 4.0}) {
    const RowMajorMatrix<float> w = channel_whitening(released, 3, 1.0, floor);
    ASSERT_TRUE(w.allFinite());
    const Eigen::VectorXd gains = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(w.cast<double>()).eigenvalues();
    EXPECT_LE(gains.maxCoeff(), (1.0 + 1e-6) / std::sqrt(floor)) << floor;
    // The one positive direction; W is float, its rounding relative to its largest gain.
    EXPECT_NEAR(gains.minCoeff(), 1.0 / std::sqrt(3.0 + floor), 1e-6 / std::sqrt(floor)) << floor;
  }
}

TEST(WhitenChannels, MultipliesEveryPixelAndLeavesRowsIndependent) {
  RowMajorMatrix<float> w(2, 2);
  w << 2, 1, 1, 3;
  RowMajorMatrix<float> rows(2, 4);
  rows << 1, 0, 0, 1,  //
      5, -1, 2, 2;
  whiten_channels(rows, w);
  RowMajorMatrix<float> expected(2, 4);
  expected << 2, 1, 1, 3,  //
      9, 2, 6, 8;
  EXPECT_EQ(rows, expected);
}

TEST(ChannelWhitening, RefusesBadArgumentsByName) {
  std::vector<double> row(5);
  const std::vector<float> features(6, 1.0f);
  EXPECT_THROW(channel_moment_row(features, 3, row), InvalidArgument);  // 6 values needed
  row.resize(6);
  EXPECT_THROW(channel_moment_row(std::vector<float>(7, 1.0f), 3, row), InvalidArgument);  // not whole pixels
  EXPECT_THROW(channel_moment_dimension(0), InvalidArgument);
  const std::vector<double> released{1, 0, 0, 1, 0, 1};
  EXPECT_NO_THROW(channel_whitening(released, 3, 1.0, 0.1));
  EXPECT_THROW(channel_whitening(released, 2, 1.0, 0.1), InvalidArgument);
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_THROW(channel_whitening(released, 3, 1.0, bad), InvalidArgument) << bad;
    EXPECT_THROW(channel_whitening(released, 3, bad, 0.1), InvalidArgument) << bad;
  }
  std::vector<double> poisoned = released;
  poisoned[2] = std::numeric_limits<double>::infinity();
  try {
    channel_whitening(poisoned, 3, 1.0, 0.1);
    FAIL() << "a non-finite release was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("released[2]"), std::string::npos) << e.what();
  }
  RowMajorMatrix<float> rows(1, 5), w = RowMajorMatrix<float>::Identity(2, 2);
  EXPECT_THROW(whiten_channels(rows, w), InvalidArgument);
  EXPECT_THROW(whiten_channels(rows, RowMajorMatrix<float>(2, 3)), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

// Tests of the scattering features: the Morlet filter bank, Kymatio's reference values, translation
// invariance, thread safety, hostile inputs, and the parameter-free group normalisation.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/features/group_normalisation.hpp"
#include "dpsgd/features/morlet_filter_bank.hpp"
#include "dpsgd/features/scattering_2d.hpp"

namespace dpsgd {
namespace {

nlohmann::json reference() {
  std::ifstream in(DPSGD_TEST_DATA_DIR "/scattering_kymatio.json");
  if (!in) throw std::runtime_error("missing " DPSGD_TEST_DATA_DIR "/scattering_kymatio.json");
  return nlohmann::json::parse(in);
}

std::vector<float> features_of(const Scattering2D& s, const std::vector<float>& image) {
  std::vector<float> out(static_cast<std::size_t>(s.output_size()));
  s.transform(image, out);
  return out;
}

double norm(const std::vector<float>& v) {
  double sum = 0.0;
  for (float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += (static_cast<double>(a[i]) - b[i]) * (a[i] - b[i]);
  return std::sqrt(sum);
}

// Index of frequency -k on an n-point DFT grid.
std::int64_t negated(std::int64_t k, std::int64_t n) { return (n - k) % n; }

TEST(MorletFilterBank, LittlewoodPaleySumIsAtMostOneAndCoversEveryFrequency) {
  // The scattering transform is non-expansive when |phi^(w)|^2 + 1/2 sum (|psi^(w)|^2 + |psi^(-w)|^2)
  // <= 1 at every frequency (Mallat 2012, Group Invariant Scattering, Prop. 2.1 for the discrete
  // frame); the lower bound is the frame's: no frequency of the padded grid is lost. For J = 2, L = 8
  // on 36 x 36 the sum lies in [0.12, 1.0000] (Kymatio's filters give 0.1230 to 1.00006 with its pi).
  const MorletFilterBank bank = morlet_filter_bank(36, 36, 2, 8);
  ASSERT_EQ(bank.psi.size(), 16u);
  double low = 1e9, high = 0.0;
  for (std::int64_t r = 0; r < 36; ++r) {
    for (std::int64_t c = 0; c < 36; ++c) {
      const auto at = [&](const std::vector<double>& f, std::int64_t rr, std::int64_t cc) {
        return f[static_cast<std::size_t>(rr * 36 + cc)];
      };
      double sum = std::pow(at(bank.phi.levels[0], r, c), 2);
      for (const FourierFilter& psi : bank.psi) {
        sum += 0.5 *
               (std::pow(at(psi.levels[0], r, c), 2) + std::pow(at(psi.levels[0], negated(r, 36), negated(c, 36)), 2));
      }
      low = std::min(low, sum);
      high = std::max(high, sum);
    }
  }
  EXPECT_LE(high, 1.0 + 1e-6);
  EXPECT_GE(high, 0.99);
  EXPECT_GE(low, 0.12);
}

TEST(MorletFilterBank, WaveletsHaveZeroMeanAndTheLowPassKeepsTheMean) {
  const MorletFilterBank bank = morlet_filter_bank(36, 36, 2, 8);
  EXPECT_NEAR(bank.phi.levels[0][0], 1.0, 1e-9);  // exact pi: the periodised Gaussian sums to 1
  for (const FourierFilter& psi : bank.psi) {
    EXPECT_NEAR(psi.levels[0][0], 0.0, 1e-12) << "j " << psi.j << " theta " << psi.theta;
    // Each wavelet's peak is near its centre frequency (3 pi / 4) / 2^j, a band-pass filter.
    EXPECT_GT(*std::max_element(psi.levels[0].begin(), psi.levels[0].end()), 0.9);
  }
  // A coarser level is the same filter folded onto a grid half as large in each direction.
  ASSERT_EQ(bank.phi.levels.size(), 2u);
  EXPECT_EQ(bank.phi.levels[1].size(), 18u * 18u);
  EXPECT_NEAR(bank.phi.levels[1][0], bank.phi.levels[0][0], 1e-12);  // the zero frequency is not masked
}

TEST(MorletFilterBank, GaborFilterIsHermitianInSpace) {
  // g(-x) = conj(g(x)) on the periodic grid: why the DFT is real and its imaginary part is dropped.
  const std::vector<double> g = gabor_filter(20, 20, 1.6, 0.7, 1.1, 0.5);
  for (std::int64_t r = 0; r < 20; ++r) {
    for (std::int64_t c = 0; c < 20; ++c) {
      const auto i = static_cast<std::size_t>(2 * (r * 20 + c));
      const auto m = static_cast<std::size_t>(2 * (negated(r, 20) * 20 + negated(c, 20)));
      EXPECT_NEAR(g[i], g[m], 1e-15);
      EXPECT_NEAR(g[i + 1], -g[m + 1], 1e-15);
    }
  }
}

TEST(Scattering2D, ShapesOfTheFashionMnistConfiguration) {
  const Scattering2D s({.height = 28, .width = 28, .scales = 2, .angles = 8});
  EXPECT_EQ(s.channels(), 81);
  EXPECT_EQ(s.out_height(), 7);
  EXPECT_EQ(s.out_width(), 7);
  EXPECT_EQ(s.output_size(), 3969);
  EXPECT_EQ(s.filters().rows, 36);
  const Scattering2D three({.height = 32, .width = 24, .scales = 3, .angles = 4});
  EXPECT_EQ(three.channels(), 1 + 12 + 16 * 3);
}

TEST(Scattering2D, MatchesKymatioOnThreeImages) {
  // tests/data/scattering_kymatio.json: tools/scattering_reference.py (Kymatio 0.3.0, float32,
  // rescaled to exact pi). Kymatio stores channels x 7 x 7; ours is 7 x 7 x channels.
  const Scattering2D s({});
  const nlohmann::json ref = reference();
  ASSERT_EQ(ref["images"].size(), 3u);
  for (const auto& [name, image] : ref["images"].items()) {
    const std::vector<float> pixels = image["pixels"].get<std::vector<float>>();
    const std::vector<double> expected = image["channels_hw"].get<std::vector<double>>();
    const std::vector<float> got = features_of(s, pixels);
    double largest = 0.0, worst[3] = {0.0, 0.0, 0.0};
    for (double v : expected) largest = std::max(largest, std::abs(v));
    for (std::int64_t c = 0; c < 81; ++c) {
      const int order = c == 0 ? 0 : (c <= 16 ? 1 : 2);
      for (std::int64_t p = 0; p < 49; ++p) {
        const double e = expected[static_cast<std::size_t>(c * 49 + p)];
        worst[order] = std::max(worst[order], std::abs(e - got[static_cast<std::size_t>(p * 81 + c)]));
      }
    }
    for (int order = 0; order < 3; ++order)
      EXPECT_LT(worst[order], 2e-6 * largest)
          << name << " order " << order << ": largest " << largest << ", worst difference " << worst[order];
    EXPECT_GT(largest, 0.05) << name;
  }
  // Negative control: the comparison fails for the mirrored image (orientations swapped), so a wrong
  // angle convention or channel order could not pass.
  const std::vector<float> pixels = ref["images"]["shapes"]["pixels"].get<std::vector<float>>();
  const std::vector<double> expected = ref["images"]["shapes"]["channels_hw"].get<std::vector<double>>();
  std::vector<float> mirrored(784);
  for (int r = 0; r < 28; ++r)
    for (int c = 0; c < 28; ++c)
      mirrored[static_cast<std::size_t>(r * 28 + c)] = pixels[static_cast<std::size_t>(r * 28 + 27 - c)];
  const std::vector<float> got = features_of(s, mirrored);
  double worst = 0.0;
  for (std::int64_t c = 1; c < 17; ++c)
    for (std::int64_t p = 0; p < 49; ++p)
      worst = std::max(
          worst, std::abs(expected[static_cast<std::size_t>(c * 49 + p)] - got[static_cast<std::size_t>(p * 81 + c)]));
  EXPECT_GT(worst, 0.02);
}

TEST(Scattering2D, AConstantImageHasOnlyItsMean) {
  // The wavelets have zero mean, so a constant image has no first- or second-order energy, and the
  // low pass returns the constant itself (reflection padding keeps it constant).
  const Scattering2D s({});
  const std::vector<float> out = features_of(s, std::vector<float>(784, 0.75f));
  for (std::int64_t p = 0; p < 49; ++p) {
    EXPECT_NEAR(out[static_cast<std::size_t>(p * 81)], 0.75, 1e-6);
    for (std::int64_t c = 1; c < 81; ++c) EXPECT_NEAR(out[static_cast<std::size_t>(p * 81 + c)], 0.0, 1e-6);
  }
}

TEST(Scattering2D, SmallTranslationsChangeFeaturesLittle) {
  // Stable to translations smaller than 2^J (Mallat 2012): a sharp-edged shape (the worst case) moved
  // by one pixel changes its scattering features about half as much as its pixels (measured 0.47-0.51
  // times). Negative control: the pixels themselves change by more than 40%.
  const Scattering2D s({});
  const auto shape = [](int dr, int dc) {
    std::vector<float> image(784, 0.0f);
    for (int r = 8; r < 20; ++r)
      for (int c = 9; c < 17; ++c) image[static_cast<std::size_t>((r + dr) * 28 + c + dc)] = 1.0f;
    image[static_cast<std::size_t>((14 + dr) * 28 + 20 + dc)] = 0.5f;
    return image;
  };
  const std::vector<float> base = shape(0, 0);
  const std::vector<float> f0 = features_of(s, base);
  for (const auto& [dr, dc] : std::vector<std::pair<int, int>>{{1, 0}, {0, 1}, {-1, 1}}) {
    const std::vector<float> moved = shape(dr, dc);
    const double pixel_change = distance(base, moved) / norm(base);
    const double feature_change = distance(f0, features_of(s, moved)) / norm(f0);
    EXPECT_GT(pixel_change, 0.4) << dr << "," << dc;  // the control: raw pixels are not invariant
    EXPECT_LT(feature_change, 0.6 * pixel_change) << dr << "," << dc;
  }
}

TEST(Scattering2D, RowsOnAllThreadsMatchOneImageAtATime) {
  const Scattering2D s({});
  const nlohmann::json ref = reference();
  RowMajorMatrix<float> images(300, 784);
  for (Eigen::Index r = 0; r < images.rows(); ++r)
    for (Eigen::Index c = 0; c < 784; ++c) images(r, c) = static_cast<float>(std::sin(0.37 * r + 0.011 * c * c));
  const RowMajorMatrix<float> features = s.transform_rows(images);
  ASSERT_EQ(features.cols(), 3969);
  for (Eigen::Index r : {0, 157, 299}) {
    const std::vector<float> image(images.row(r).data(), images.row(r).data() + 784);
    const std::vector<float> one = features_of(s, image);
    for (Eigen::Index c = 0; c < 3969; ++c) ASSERT_EQ(features(r, c), one[static_cast<std::size_t>(c)]);
  }
  // Two objects used from two threads at once (the planner lock) give the same bits.
  RowMajorMatrix<float> other;
  std::thread t([&] {
    const Scattering2D second({});
    other = second.transform_rows(images.topRows(40));
  });
  const RowMajorMatrix<float> mine = s.transform_rows(images.topRows(40));
  t.join();
  EXPECT_TRUE(mine == other);
}

TEST(Scattering2D, RefusesBadShapesAndNonFiniteInput) {
  EXPECT_THROW(Scattering2D({.height = 28, .width = 28, .scales = 0, .angles = 8}), InvalidArgument);
  EXPECT_THROW(Scattering2D({.height = 28, .width = 28, .scales = 2, .angles = 0}), InvalidArgument);
  EXPECT_THROW(Scattering2D({.height = 2, .width = 28, .scales = 3, .angles = 8}), InvalidArgument);
  EXPECT_THROW(Scattering2D({.height = 0, .width = 28, .scales = 2, .angles = 8}), InvalidArgument);
  const Scattering2D s({});
  std::vector<float> image(784, 0.1f), out(3969);
  EXPECT_THROW(s.transform(std::vector<float>(783), out), InvalidArgument);
  std::vector<float> short_out(10);
  EXPECT_THROW(s.transform(image, short_out), InvalidArgument);
  image[300] = std::nanf("");
  EXPECT_THROW(s.transform(image, out), InvalidArgument);
  RowMajorMatrix<float> rows = RowMajorMatrix<float>::Zero(3, 784);
  rows(2, 5) = std::numeric_limits<float>::infinity();
  EXPECT_THROW((void)s.transform_rows(rows), InvalidArgument);
  EXPECT_THROW((void)s.transform_rows(RowMajorMatrix<float>::Zero(3, 700)), InvalidArgument);
  // Huge finite pixels stay finite (the transform is linear up to moduli, computed in double).
  std::vector<float> huge(784, 0.0f);
  huge[400] = 3e38f;
  huge[401] = -3e38f;
  for (float v : features_of(s, huge)) ASSERT_TRUE(std::isfinite(v));
}

TEST(GroupNormalisation, EachGroupOfEachRowGetsMeanZeroVarianceOne) {
  RowMajorMatrix<float> rows(2, 4 * 6);  // 4 pixels x 6 channels, 3 groups of 2 channels
  for (Eigen::Index r = 0; r < 2; ++r)
    for (Eigen::Index c = 0; c < rows.cols(); ++c) rows(r, c) = static_cast<float>(1e4 + (r + 1) * std::cos(c * 1.3));
  const RowMajorMatrix<float> before = rows;
  group_normalise_rows(rows, 6, 3, 1e-12);
  for (Eigen::Index r = 0; r < 2; ++r) {
    for (int g = 0; g < 3; ++g) {
      double sum = 0.0, squares = 0.0;
      for (int p = 0; p < 4; ++p)
        for (int c = 2 * g; c < 2 * g + 2; ++c) sum += rows(r, p * 6 + c);
      for (int p = 0; p < 4; ++p)
        for (int c = 2 * g; c < 2 * g + 2; ++c) squares += std::pow(rows(r, p * 6 + c) - sum / 8, 2);
      EXPECT_NEAR(sum / 8, 0.0, 1e-4);  // the 1e4 offset cancels (two passes in double)
      EXPECT_NEAR(squares / 8, 1.0, 1e-3);
    }
  }
  // One row's result does not depend on the other rows: no statistic of the data set is used.
  RowMajorMatrix<float> alone = before.topRows(1);
  group_normalise_rows(alone, 6, 3, 1e-12);
  EXPECT_TRUE(alone.row(0) == rows.row(0));
  EXPECT_THROW(group_normalise_rows(rows, 6, 4), InvalidArgument);
  EXPECT_THROW(group_normalise_rows(rows, 5, 5), InvalidArgument);
  EXPECT_THROW(group_normalise_rows(rows, 6, 3, 0.0), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

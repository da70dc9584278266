// Tests of dense per-example clipping against a long-double brute force, and of its corner cases.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "support/reference_clipping.hpp"

namespace dpsgd {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(ClipFactor, SharedMathCornerCases) {
  EXPECT_EQ(clip_factor(4.0, 1.0, ClipMethod::kHard, 0.0, 0), 0.0);  // padding
  EXPECT_EQ(clip_factor(kNaN, 1.0, ClipMethod::kHard, 0.0, 1), 0.0);
  EXPECT_EQ(clip_factor(kInf, 1.0, ClipMethod::kHard, 0.0, 1), 0.0);
  EXPECT_EQ(clip_factor(-1.0, 1.0, ClipMethod::kHard, 0.0, 1), 0.0);
  EXPECT_EQ(clip_factor(0.0, 1.0, ClipMethod::kHard, 0.0, 1), 1.0);
  EXPECT_EQ(clip_factor(0.25, 1.0, ClipMethod::kHard, 0.0, 1), 1.0);
  EXPECT_EQ(clip_factor(1.0, 1.0, ClipMethod::kHard, 0.0, 1), 1.0);
  EXPECT_DOUBLE_EQ(clip_factor(16.0, 2.0, ClipMethod::kHard, 0.0, 1), 0.5);
  EXPECT_DOUBLE_EQ(clip_factor(16.0, 2.0, ClipMethod::kAutomatic, 0.01, 1), 2.0 / 4.01);
  EXPECT_DOUBLE_EQ(clip_factor(0.0, 2.0, ClipMethod::kAutomatic, 0.01, 1), 200.0);
  EXPECT_DOUBLE_EQ(clip_factor(1e300, 1.0, ClipMethod::kHard, 0.0, 1), 1e-150);
}

template <typename Scalar>
void check_against_reference(const ClipConfig& config, Eigen::Index batch, Eigen::Index width,
                             std::vector<std::int64_t> offsets, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "seed=" << seed << " batch=" << batch << " width=" << width
                                    << " groups=" << config.num_groups());
  std::mt19937_64 rng(seed);
  const RowMajorMatrix<double> rows = test::random_rows(rng, batch, width);
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch));
  for (auto& m : mask) m = rng() % 5 != 0;  // ~20% padding
  const RowMajorMatrix<Scalar> typed = rows.cast<Scalar>();
  const RowMajorMatrix<double> rounded = typed.template cast<double>();
  std::vector<std::int64_t> full_offsets = offsets.empty() ? std::vector<std::int64_t>{0, width} : offsets;
  std::vector<long double> norms;
  const auto expected = test::reference_clipped_sum(rounded, mask, config, full_offsets, &norms);

  std::vector<Scalar> sum(static_cast<std::size_t>(width), Scalar{0});
  const ClipFactors result = clip_and_accumulate<Scalar>(typed, mask, config, sum, offsets);
  long double err = 0.0L, ref = 0.0L;
  for (Eigen::Index j = 0; j < width; ++j) {
    err += (sum[j] - expected[j]) * (sum[j] - expected[j]);
    ref += expected[j] * expected[j];
  }
  const double tolerance = std::is_same_v<Scalar, float> ? 1e-5 : 1e-12;
  EXPECT_LE(std::sqrt(err), tolerance * std::sqrt(ref) + 1e-30);
  for (Eigen::Index i = 0; i < batch; ++i) {
    EXPECT_NEAR(result.stats.norms[i], static_cast<double>(norms[i]), tolerance * static_cast<double>(norms[i]));
  }
  std::int64_t real = 0;
  for (auto m : mask) real += m;
  EXPECT_EQ(result.stats.num_examples, real);
  EXPECT_EQ(result.stats.num_nonfinite, 0);
}

TEST(ClipAndAccumulate, MatchesBruteForceOnRandomShapes) {
  std::mt19937_64 shapes(20261122);
  for (int trial = 0; trial < 12; ++trial) {
    const Eigen::Index batch = 1 + static_cast<Eigen::Index>(shapes() % 70);
    const Eigen::Index width = 1 + static_cast<Eigen::Index>(shapes() % 9000);
    const std::uint64_t seed = shapes();
    check_against_reference<float>(ClipConfig::flat(1.0), batch, width, {}, seed);
    check_against_reference<double>(ClipConfig::flat(0.3), batch, width, {}, seed);
    check_against_reference<float>(ClipConfig::flat(1.0, ClipMethod::kAutomatic), batch, width, {}, seed);
    if (width >= 3) {
      const std::int64_t a = width / 3, b = 2 * width / 3 + 1;
      const ClipConfig per_group = ClipConfig::per_group({0.5, 1.0, 2.0});
      check_against_reference<float>(per_group, batch, width, {0, a == 0 ? 1 : a, b, width}, seed);
      check_against_reference<double>(per_group, batch, width, {0, a == 0 ? 1 : a, b, width}, seed);
    }
  }
}

TEST(ClipAndAccumulate, LargeRowsSpanningManyTiles) {
  check_against_reference<float>(ClipConfig::flat(1.0), 33, 100003, {}, 5);
}

TEST(ClipAndAccumulate, BatchOfOneAndZeroRows) {
  RowMajorMatrix<float> rows = RowMajorMatrix<float>::Zero(3, 5);
  rows.row(1).setConstant(2.0f);  // norm sqrt(20), clipped to 1
  std::vector<std::uint8_t> mask{1, 1, 1};
  std::vector<float> sum(5, 0.0f);
  const ClipFactors r = clip_and_accumulate<float>(rows, mask, ClipConfig::flat(1.0), sum);
  for (float s : sum) EXPECT_NEAR(s, 2.0 / std::sqrt(20.0), 1e-6);
  EXPECT_EQ(r.stats.num_clipped, 1);
  EXPECT_EQ(r.factors(0, 0), 1.0);  // a zero row is not clipped
  EXPECT_EQ(r.stats.norms[0], 0.0);

  RowMajorMatrix<double> one(1, 2);
  one << 3.0, 4.0;
  std::vector<double> s1{10.0, 10.0};
  std::vector<std::uint8_t> m1{1};
  clip_and_accumulate<double>(one, m1, ClipConfig::flat(1.0), s1);
  EXPECT_DOUBLE_EQ(s1[0], 10.6);  // accumulates onto what the sum held
  EXPECT_DOUBLE_EQ(s1[1], 10.8);
}

TEST(ClipAndAccumulate, AllPaddingLeavesTheSumUntouched) {
  RowMajorMatrix<float> rows = RowMajorMatrix<float>::Constant(4, 7, kNaN);  // garbage in padding
  std::vector<std::uint8_t> mask(4, 0);
  std::vector<float> sum(7, 1.5f);
  const ClipFactors r = clip_and_accumulate<float>(rows, mask, ClipConfig::flat(1.0), sum);
  for (float s : sum) EXPECT_EQ(s, 1.5f);
  EXPECT_EQ(r.stats.num_examples, 0);
  EXPECT_EQ(r.stats.num_nonfinite, 0);  // padding is not counted
}

TEST(ClipAndAccumulate, NonFiniteRowsAreDroppedAndCounted) {
  std::mt19937_64 rng(77);
  RowMajorMatrix<double> rows = test::random_rows(rng, 6, 40);
  rows(1, 3) = kNaN;
  rows(3, 0) = kInf;
  rows(4, 39) = -kInf;
  std::vector<std::uint8_t> mask{1, 1, 1, 1, 0, 1};  // row 4 is padding
  RowMajorMatrix<double> clean = rows;
  clean.row(1).setZero();
  clean.row(3).setZero();
  clean.row(4).setZero();
  std::vector<double> sum(40, 0.0), expected(40, 0.0);
  const ClipFactors r = clip_and_accumulate<double>(rows, mask, ClipConfig::flat(0.5), sum);
  clip_and_accumulate<double>(clean, mask, ClipConfig::flat(0.5), expected);
  EXPECT_EQ(sum, expected);
  EXPECT_EQ(r.stats.num_nonfinite, 2);
  EXPECT_EQ(r.stats.num_examples, 5);
  EXPECT_TRUE(std::isnan(r.stats.norms[1]));
  EXPECT_EQ(r.factors(1, 0), 0.0);
  EXPECT_EQ(r.factors(3, 0), 0.0);
}

TEST(ClipAndAccumulate, NonFiniteInOneGroupDropsTheWholeExample) {
  RowMajorMatrix<float> rows = RowMajorMatrix<float>::Ones(2, 4);
  rows(0, 3) = static_cast<float>(kNaN);
  std::vector<std::uint8_t> mask{1, 1};
  std::vector<float> sum(4, 0.0f);
  const std::vector<std::int64_t> offsets{0, 2, 4};
  const ClipFactors r = clip_and_accumulate<float>(rows, mask, ClipConfig::per_group({10.0, 10.0}), sum, offsets);
  EXPECT_EQ(sum, (std::vector<float>{1.0f, 1.0f, 1.0f, 1.0f}));
  EXPECT_EQ(r.stats.num_nonfinite, 1);
}

TEST(ClipAndAccumulate, HugeNormsAreClippedNotOverflowed) {
  // Float squares overflow above 1.8e19; the norm is taken in double and the row still clips to C.
  RowMajorMatrix<float> rows(2, 3);
  rows << 3e30f, 4e30f, 0.0f, 3e-30f, 4e-30f, 0.0f;
  std::vector<std::uint8_t> mask{1, 1};
  std::vector<float> sum(3, 0.0f);
  const ClipFactors r = clip_and_accumulate<float>(rows, mask, ClipConfig::flat(1.0), sum);
  // Within the clip bound's rounding allowance (a few 1e-6 for float rows) below the exact 0.6, 0.8.
  EXPECT_NEAR(sum[0], 0.6f, 1e-5);
  EXPECT_NEAR(sum[1], 0.8f, 1e-5);
  EXPECT_LE(std::hypot(sum[0], sum[1]), 1.0);
  EXPECT_NEAR(r.stats.norms[0], 5e30, 5e25);
  EXPECT_EQ(r.stats.num_nonfinite, 0);
  EXPECT_EQ(r.stats.num_clipped, 1);

  // A double row whose norm is above sqrt(DBL_MAX) cannot have its squared norm represented: it
  // is dropped as non-finite rather than scaled by a wrong factor.
  RowMajorMatrix<double> huge(2, 2);
  huge << 1e200, 1e200, 1e100, 0.0;
  std::vector<double> dsum(2, 0.0);
  const ClipFactors hr = clip_and_accumulate<double>(huge, mask, ClipConfig::flat(1.0), dsum);
  EXPECT_EQ(hr.stats.num_nonfinite, 1);
  EXPECT_LE(dsum[0], 1.0);  // clipped to C from a norm bound: at most C, within rounding of it
  EXPECT_NEAR(dsum[0], 1.0, 1e-14);
  EXPECT_EQ(dsum[1], 0.0);
}

TEST(ClipAndAccumulate, BitIdenticalForOneAndTwoThreads) {
  std::mt19937_64 rng(4);
  const RowMajorMatrix<float> rows = test::random_rows(rng, 64, 50000).cast<float>();
  std::vector<std::uint8_t> mask(64, 1);
  const int saved = omp_get_max_threads();
  std::vector<float> one(50000, 0.0f), two(50000, 0.0f);
  omp_set_num_threads(1);
  clip_and_accumulate<float>(rows, mask, ClipConfig::flat(1.0), one);
  omp_set_num_threads(2);
  clip_and_accumulate<float>(rows, mask, ClipConfig::flat(1.0), two);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);
}

void check_fused_against_two_pass(Eigen::Index kWidth) {
  SCOPED_TRACE(::testing::Message() << "width " << kWidth);
  // clip_and_accumulate itself takes the fused path only from 32 MiB; it is called directly here.
  constexpr Eigen::Index kBatch = 10;
  std::mt19937_64 rng(77);
  RowMajorMatrix<float> rows = test::random_rows(rng, kBatch, kWidth).cast<float>();
  rows(2, kWidth / 2 + 1) = std::numeric_limits<float>::quiet_NaN();
  rows(7, 5) = std::numeric_limits<float>::infinity();
  rows.row(4) *= 1e-4f;  // under the clip norm: factor 1
  std::vector<std::uint8_t> mask{1, 1, 1, 0, 1, 1, 1, 1, 0, 1};
  rows(3, 0) = std::numeric_limits<float>::quiet_NaN();  // padding: never read
  const ClipConfig config = ClipConfig::flat(2.0);
  ASSERT_FALSE(detail::use_fused_clip<float>(rows, config)) << "the reference below must be the two-pass path";
  std::vector<float> two_pass(kWidth, 0.0f), fused_one(kWidth, 0.0f), fused_two(kWidth, 0.0f);
  const ClipFactors expected = clip_and_accumulate<float>(rows, mask, config, two_pass);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const ClipFactors one = detail::fused_clip_and_accumulate<float>(rows, mask, config, fused_one);
  omp_set_num_threads(2);
  const ClipFactors two = detail::fused_clip_and_accumulate<float>(rows, mask, config, fused_two);
  omp_set_num_threads(saved);
  EXPECT_EQ(fused_one, fused_two);
  EXPECT_EQ(one.stats.num_examples, expected.stats.num_examples);
  EXPECT_EQ(one.stats.num_clipped, expected.stats.num_clipped);
  EXPECT_EQ(one.stats.num_nonfinite, 2);
  ASSERT_EQ(one.stats.norms.size(), expected.stats.norms.size());
  for (Eigen::Index i = 0; i < kBatch; ++i) {
    const double want = expected.stats.norms[static_cast<std::size_t>(i)];
    const double got = one.stats.norms[static_cast<std::size_t>(i)];
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << i;
    } else {
      EXPECT_NEAR(got, want, 1e-6 * want) << i;
    }
    EXPECT_NEAR(one.factors(i, 0), expected.factors(i, 0), 1e-6 * expected.factors(i, 0)) << i;
  }
  double worst = 0.0;
  for (Eigen::Index j = 0; j < kWidth; ++j) {
    ASSERT_TRUE(std::isfinite(fused_one[j])) << j;
    worst = std::max(worst, static_cast<double>(std::abs(fused_one[j] - two_pass[j])));
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(ClipAndAccumulate, FusedPathMatchesTwoPassWithPaddingAndNonFiniteRows) {
  // Rows of 1.2 MB: one row per 1.5 MiB block, ten blocks. Rows of 400 KB: three rows per block,
  // four blocks, the last partial. Both pipeline the norms of one block with the sum of the last.
  check_fused_against_two_pass(300001);
  check_fused_against_two_pass(100003);
}

TEST(ClipAndAccumulate, LargeFlatMatricesTakeTheFusedPath) {
  const RowMajorMatrix<float> big(1024, 10000), small(64, 10000);
  EXPECT_TRUE(detail::use_fused_clip<float>(big, ClipConfig::flat(1.0)));
  EXPECT_FALSE(detail::use_fused_clip<float>(small, ClipConfig::flat(1.0)));
  EXPECT_FALSE(detail::use_fused_clip<float>(big, ClipConfig::per_group({1.0, 1.0})));
}

TEST(ClipAndAccumulate, SquaredNormsAddAcrossBlocks) {
  // Splitting the columns into two blocks that feed one group gives the flat result.
  std::mt19937_64 rng(8);
  const RowMajorMatrix<double> rows = test::random_rows(rng, 10, 30);
  std::vector<std::uint8_t> mask(10, 1);
  SquaredNorms norms = SquaredNorms::Zero(10, 1);
  accumulate_squared_norms<double>(rows.leftCols(12), norms, 0);
  accumulate_squared_norms<double>(rows.rightCols(18), norms, 0);
  const ClipFactors f = compute_clip_factors(norms, mask, ClipConfig::flat(0.2));
  std::vector<double> sum(30, 0.0), flat(30, 0.0);
  accumulate_clipped_sum<double>(rows.leftCols(12), f.factors, 0, std::span<double>(sum).first(12));
  accumulate_clipped_sum<double>(rows.rightCols(18), f.factors, 0, std::span<double>(sum).subspan(12));
  clip_and_accumulate<double>(rows, mask, ClipConfig::flat(0.2), flat);
  for (int j = 0; j < 30; ++j) EXPECT_NEAR(sum[j], flat[j], 1e-15);
}

TEST(ClipAndAccumulate, RejectsBadArguments) {
  RowMajorMatrix<float> rows = RowMajorMatrix<float>::Ones(3, 4);
  std::vector<std::uint8_t> mask(3, 1), short_mask(2, 1);
  std::vector<float> sum(4, 0.0f), short_sum(3, 0.0f);
  const ClipConfig ok = ClipConfig::flat(1.0);
  EXPECT_THROW(clip_and_accumulate<float>(rows, short_mask, ok, sum), InvalidArgument);
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, ok, short_sum), InvalidArgument);
  for (double c : {0.0, -1.0, kNaN, kInf}) {
    EXPECT_THROW(clip_and_accumulate<float>(rows, mask, ClipConfig::flat(c), sum), InvalidArgument) << c;
  }
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, ClipConfig::per_group({}), sum), InvalidArgument);
  ClipConfig bad_gamma = ClipConfig::flat(1.0, ClipMethod::kAutomatic);
  bad_gamma.automatic_stability = 0.0;
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, bad_gamma, sum), InvalidArgument);
  ClipConfig bad_method = ok;
  bad_method.method = static_cast<ClipMethod>(9);
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, bad_method, sum), InvalidArgument);
  const ClipConfig two = ClipConfig::per_group({1.0, 1.0});
  const std::vector<std::int64_t> wrong_count{0, 4};
  const std::vector<std::int64_t> not_increasing{0, 0, 4};
  const std::vector<std::int64_t> wrong_end{0, 2, 5};
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, two, sum, wrong_count), InvalidArgument);
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, two, sum, not_increasing), InvalidArgument);
  EXPECT_THROW(clip_and_accumulate<float>(rows, mask, two, sum, wrong_end), InvalidArgument);
  RowMajorMatrix<float> empty(0, 4);
  std::vector<std::uint8_t> no_mask;
  EXPECT_THROW(clip_and_accumulate<float>(empty, no_mask, ok, sum), InvalidArgument);
  SquaredNorms norms = SquaredNorms::Zero(3, 1);
  EXPECT_THROW(accumulate_squared_norms<float>(rows, norms, 1), InvalidArgument);
  SquaredNorms wrong_rows = SquaredNorms::Zero(2, 1);
  EXPECT_THROW(accumulate_squared_norms<float>(rows, wrong_rows, 0), InvalidArgument);
  EXPECT_THROW(compute_clip_factors(SquaredNorms::Zero(3, 2), mask, ok), InvalidArgument);
  EXPECT_THROW(compute_clip_factors(SquaredNorms::Zero(3, 1), short_mask, ok), InvalidArgument);
  EXPECT_THROW(compute_clip_factors(SquaredNorms::Zero(0, 1), no_mask, ok), InvalidArgument);
  const Eigen::MatrixXd factors = Eigen::MatrixXd::Ones(3, 1);
  EXPECT_THROW(accumulate_clipped_sum<float>(rows, factors, 0, short_sum), InvalidArgument);
  EXPECT_THROW(accumulate_clipped_sum<float>(rows, factors, 1, sum), InvalidArgument);
  EXPECT_THROW(accumulate_clipped_sum<float>(rows, Eigen::MatrixXd::Ones(2, 1), 0, sum), InvalidArgument);
  try {
    clip_and_accumulate<float>(rows, mask, ClipConfig::flat(-3.0), sum);
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("group_clip_norms[0]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("-3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dpsgd

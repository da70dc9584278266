// Tests of ghost clipping for linear layers against materialised per-example gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"

namespace dpsgd {
namespace {

using MatrixLd = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;

struct LayerData {
  RowMajorMatrix<double> a, dy;
  std::int64_t batch, t;
};

LayerData random_layer(std::mt19937_64& rng, std::int64_t batch, std::int64_t t, std::int64_t d_in,
                       std::int64_t d_out) {
  std::normal_distribution<double> normal;
  LayerData l{RowMajorMatrix<double>(batch * t, d_in), RowMajorMatrix<double>(batch * t, d_out), batch, t};
  for (Eigen::Index i = 0; i < l.a.size(); ++i) l.a.data()[i] = normal(rng);
  for (Eigen::Index i = 0; i < l.dy.size(); ++i) l.dy.data()[i] = normal(rng) * 0.1;
  return l;
}

// Example i's weight gradient sum_t dy_it a_it^T, materialised in long double.
MatrixLd per_example_weight_grad(const LayerData& l, std::int64_t i) {
  const MatrixLd a = l.a.middleRows(i * l.t, l.t).cast<long double>();
  const MatrixLd g = l.dy.middleRows(i * l.t, l.t).cast<long double>();
  return g.transpose() * a;
}

Eigen::Matrix<long double, 1, Eigen::Dynamic> per_example_bias_grad(const LayerData& l, std::int64_t i) {
  return l.dy.middleRows(i * l.t, l.t).cast<long double>().colwise().sum();
}

template <typename Scalar>
void check_norms(const LayerData& l, GhostNormMethod method, bool bias) {
  SquaredNorms norms = SquaredNorms::Zero(l.batch, 2);
  const RowMajorMatrix<Scalar> a = l.a.cast<Scalar>(), dy = l.dy.cast<Scalar>();
  accumulate_linear_squared_norms<Scalar>(a, dy, l.batch, bias, norms, 1, method);
  // The norms are upper bounds that include the rounding of the clipped GEMM (rounding_bounds.hpp):
  // never below the exact value, and above it by a few 1e-5 at most for float inputs.
  const double tolerance = std::is_same_v<Scalar, float> ? 2e-4 : 1e-10;
  LayerData rounded{a.template cast<double>(), dy.template cast<double>(), l.batch, l.t};
  for (std::int64_t i = 0; i < l.batch; ++i) {
    long double expected = per_example_weight_grad(rounded, i).squaredNorm();
    if (bias) expected += per_example_bias_grad(rounded, i).squaredNorm();
    EXPECT_GE(norms(i, 1), static_cast<double>(expected)) << "example " << i;
    EXPECT_LE(norms(i, 1), static_cast<double>(expected) * (1.0 + tolerance)) << "example " << i;
    EXPECT_EQ(norms(i, 0), 0.0);  // other groups untouched
  }
}

TEST(GhostLinearNorms, MatchMaterialisedGradientsOnRandomShapes) {
  std::mt19937_64 shapes(1234);
  for (int trial = 0; trial < 10; ++trial) {
    const std::int64_t batch = 1 + shapes() % 9, t = 1 + shapes() % 12, d_in = 1 + shapes() % 40,
                       d_out = 1 + shapes() % 30;
    const std::uint64_t seed = shapes();
    SCOPED_TRACE(::testing::Message() << "seed=" << seed << " B=" << batch << " T=" << t << " d_in=" << d_in
                                      << " d_out=" << d_out);
    std::mt19937_64 rng(seed);
    const LayerData l = random_layer(rng, batch, t, d_in, d_out);
    for (GhostNormMethod m : {GhostNormMethod::kAuto, GhostNormMethod::kGram, GhostNormMethod::kMaterialize}) {
      for (bool bias : {false, true}) {
        check_norms<double>(l, m, bias);
        check_norms<float>(l, m, bias);
      }
    }
  }
}

TEST(GhostLinearNorms, MethodChoiceFollowsFlopCounts) {
  EXPECT_EQ(choose_ghost_norm_method({8, 1, 10, 10}), GhostNormMethod::kGram);
  EXPECT_EQ(choose_ghost_norm_method({8, 16, 1024, 1024}), GhostNormMethod::kGram);       // short sequence, wide layer
  EXPECT_EQ(choose_ghost_norm_method({8, 4096, 64, 64}), GhostNormMethod::kMaterialize);  // long sequence, narrow layer
}

TEST(GhostLinearClippedGradient, MatchesWeightedSumOfMaterialisedGradients) {
  std::mt19937_64 rng(99);
  for (std::int64_t t : {1, 7}) {
    const LayerData l = random_layer(rng, 6, t, 13, 5);
    Eigen::MatrixXd factors(6, 2);
    factors.setRandom();
    factors.col(1) = factors.col(1).cwiseAbs();
    factors(2, 1) = 0.0;
    RowMajorMatrix<double> weight_grad = RowMajorMatrix<double>::Constant(5, 13, 0.5);
    std::vector<double> bias_grad(5, -1.0);
    accumulate_linear_clipped_gradient<double>(l.a, l.dy, 6, factors, 1, weight_grad, bias_grad);
    MatrixLd expected = MatrixLd::Constant(5, 13, 0.5L);
    Eigen::Matrix<long double, 1, Eigen::Dynamic> expected_bias =
        Eigen::Matrix<long double, 1, Eigen::Dynamic>::Constant(5, -1.0L);
    for (std::int64_t i = 0; i < 6; ++i) {
      expected += static_cast<long double>(factors(i, 1)) * per_example_weight_grad(l, i);
      expected_bias += static_cast<long double>(factors(i, 1)) * per_example_bias_grad(l, i);
    }
    EXPECT_LT((weight_grad.cast<long double>() - expected).norm(), 1e-12L * expected.norm()) << "T=" << t;
    for (int j = 0; j < 5; ++j) EXPECT_NEAR(bias_grad[j], static_cast<double>(expected_bias(j)), 1e-12);
  }
}

TEST(GhostLinear, EndToEndEqualsDenseClippingOfMaterialisedRows) {
  // Clip with ghost norms + GEMM, and separately materialise each example's flattened gradient
  // [vec(W_i), b_i] and clip the dense rows: the two sums must agree.
  std::mt19937_64 rng(5);
  const LayerData l = random_layer(rng, 10, 3, 8, 4);
  std::vector<std::uint8_t> mask{1, 1, 0, 1, 1, 1, 1, 0, 1, 1};
  const ClipConfig config = ClipConfig::flat(0.3);
  SquaredNorms norms = SquaredNorms::Zero(10, 1);
  accumulate_linear_squared_norms<double>(l.a, l.dy, 10, true, norms);
  const ClipFactors f = compute_clip_factors(norms, mask, config);
  RowMajorMatrix<double> ghost_w = RowMajorMatrix<double>::Zero(4, 8);
  std::vector<double> ghost_b(4, 0.0);
  accumulate_linear_clipped_gradient<double>(l.a, l.dy, 10, f.factors, 0, ghost_w, ghost_b);

  RowMajorMatrix<double> rows(10, 4 * 8 + 4);
  for (std::int64_t i = 0; i < 10; ++i) {
    const RowMajorMatrix<double> w = per_example_weight_grad(l, i).cast<double>();
    rows.row(i).head(32) = Eigen::Map<const Eigen::RowVectorXd>(w.data(), 32);
    rows.row(i).tail(4) = per_example_bias_grad(l, i).cast<double>();
  }
  std::vector<double> dense(36, 0.0);
  const ClipFactors df = clip_and_accumulate<double>(rows, mask, config, dense);
  for (int j = 0; j < 32; ++j) EXPECT_NEAR(ghost_w.data()[j], dense[j], 1e-12);
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(ghost_b[j], dense[32 + j], 1e-12);
  EXPECT_EQ(f.stats.num_clipped, df.stats.num_clipped);
  EXPECT_GT(f.stats.num_clipped, 0);
}

TEST(GhostLinear, MixesWithDenseBlocksInOneGroup) {
  // An example's gradient = [dense block | linear layer]: its squared norm is the sum of both parts.
  std::mt19937_64 rng(6);
  const LayerData l = random_layer(rng, 4, 1, 3, 2);
  RowMajorMatrix<double> dense_block(4, 5);
  dense_block.setRandom();
  SquaredNorms norms = SquaredNorms::Zero(4, 1);
  accumulate_squared_norms<double>(dense_block, norms, 0);
  accumulate_linear_squared_norms<double>(l.a, l.dy, 4, false, norms, 0);
  for (std::int64_t i = 0; i < 4; ++i) {
    const long double expected = dense_block.row(i).squaredNorm() + per_example_weight_grad(l, i).squaredNorm();
    EXPECT_NEAR(norms(i, 0), static_cast<double>(expected), 1e-12);
  }
}

TEST(GhostLinear, NonFiniteExamplesNeverReachTheGradient) {
  std::mt19937_64 rng(7);
  LayerData l = random_layer(rng, 4, 2, 3, 2);
  l.a(2, 1) = std::numeric_limits<double>::quiet_NaN();  // example 1 (rows 2-3), a real example
  l.dy(7, 0) = std::numeric_limits<double>::infinity();  // example 3, padding
  std::vector<std::uint8_t> mask{1, 1, 1, 0};
  SquaredNorms norms = SquaredNorms::Zero(4, 1);
  accumulate_linear_squared_norms<double>(l.a, l.dy, 4, true, norms);
  EXPECT_TRUE(std::isnan(norms(1, 0)));
  const ClipFactors f = compute_clip_factors(norms, mask, ClipConfig::flat(1.0));
  EXPECT_EQ(f.stats.num_nonfinite, 1);
  RowMajorMatrix<double> w = RowMajorMatrix<double>::Zero(2, 3);
  std::vector<double> b(2, 0.0);
  accumulate_linear_clipped_gradient<double>(l.a, l.dy, 4, f.factors, 0, w, b);
  EXPECT_TRUE(w.allFinite());
  EXPECT_TRUE(std::isfinite(b[0]) && std::isfinite(b[1]));
  // Same as the gradient of examples 0 and 2 alone.
  RowMajorMatrix<double> expected = RowMajorMatrix<double>::Zero(2, 3);
  for (std::int64_t i : {0, 2}) expected += (f.factors(i, 0) * per_example_weight_grad(l, i)).cast<double>();
  EXPECT_LT((w - expected).norm(), 1e-12);
}

// Regression: a float Gram product that overflows gives inf - inf = NaN, and std::max(0.0, NaN) is
// 0.0, which once turned a huge finite gradient into a zero norm (factor 1: unclipped). The Gram
// route must keep NaN so that the example is redone in double and clipped.
TEST(GhostLinear, OverflowingFloatGramIsRedoneInDoubleNotZeroed) {
  RowMajorMatrix<float> a(3, 2), dy(3, 1);
  a << 1e20f, 0.0f, -1e20f, 0.0f, 1e20f, 0.0f;  // A A^T has entries of +-1e40: inf in float
  dy << 1.0f, 0.0f, 0.0f;                       // the true gradient is dy_0 a_0^T, norm 1e20
  SquaredNorms norms = SquaredNorms::Zero(1, 1);
  accumulate_linear_squared_norms<float>(a, dy, 1, false, norms, 0, GhostNormMethod::kGram);
  EXPECT_NEAR(norms(0, 0), 1e40, 1e35);  // a bound: within a few 1e-6 above, from the float GEMM
  const ClipFactors f = compute_clip_factors(norms, std::vector<std::uint8_t>{1}, ClipConfig::flat(1.0));
  EXPECT_EQ(f.stats.num_clipped, 1);
  RowMajorMatrix<float> w = RowMajorMatrix<float>::Zero(1, 2);
  accumulate_linear_clipped_gradient<float>(a, dy, 1, f.factors, 0, w, {});
  EXPECT_NEAR(w.norm(), 1.0, 1e-5);  // clipped to C = 1
}

TEST(GhostLinear, InfiniteActivationWithZeroOutputGradientIsStillNonFinite) {
  // ||a||^2 ||dy||^2 = inf * 0 = NaN would be caught anyway; a finite product must not hide inf.
  RowMajorMatrix<double> a(1, 2), dy(1, 1);
  a << std::numeric_limits<double>::infinity(), 1.0;
  dy << 0.0;
  SquaredNorms norms = SquaredNorms::Zero(1, 1);
  accumulate_linear_squared_norms<double>(a, dy, 1, false, norms);
  EXPECT_FALSE(std::isfinite(norms(0, 0)));
}

TEST(GhostLinear, BiasOnlyPerExampleGradients) {
  std::mt19937_64 rng(8);
  const LayerData l = random_layer(rng, 3, 4, 2, 5);
  const RowMajorMatrix<double> g = linear_bias_per_example_gradients<double>(l.dy, 3);
  ASSERT_EQ(g.rows(), 3);
  ASSERT_EQ(g.cols(), 5);
  for (std::int64_t i = 0; i < 3; ++i)
    EXPECT_LT((g.row(i).cast<long double>() - per_example_bias_grad(l, i)).norm(), 1e-14L);
}

TEST(GhostLinear, KeptPerExampleRowsAreThePerExampleGradients) {
  std::mt19937_64 rng(9);
  const LayerData l = random_layer(rng, 3, 5, 4, 2);
  for (const bool bias : {false, true}) {
    const RowMajorMatrix<double> rows = linear_per_example_gradients<double>(l.a, l.dy, 3, bias);
    ASSERT_EQ(rows.rows(), 3);
    ASSERT_EQ(rows.cols(), bias ? 2 * 4 + 2 : 2 * 4);
    for (std::int64_t i = 0; i < 3; ++i) {
      const MatrixLd w = per_example_weight_grad(l, i);  // 2 x 4, laid out row-major as W is
      for (Eigen::Index o = 0; o < 2; ++o) {
        for (Eigen::Index k = 0; k < 4; ++k) EXPECT_NEAR(rows(i, o * 4 + k), static_cast<double>(w(o, k)), 1e-14);
      }
      if (bias) {
        EXPECT_LT((rows.row(i).tail(2).cast<long double>() - per_example_bias_grad(l, i)).norm(), 1e-14L);
      }
    }
  }
  EXPECT_THROW(linear_per_example_gradients<double>(l.a, l.dy, 4, true), InvalidArgument);  // 15 % 4 != 0
  EXPECT_THROW(linear_per_example_gradients<double>(l.a, l.dy.topRows(10), 3, true), InvalidArgument);
  EXPECT_THROW(linear_per_example_gradients<double>(l.a, l.dy, 0, true), InvalidArgument);
}

TEST(GhostLinear, RejectsBadArguments) {
  RowMajorMatrix<float> a = RowMajorMatrix<float>::Ones(6, 3), dy = RowMajorMatrix<float>::Ones(6, 2);
  RowMajorMatrix<float> dy_short = RowMajorMatrix<float>::Ones(5, 2);
  SquaredNorms norms = SquaredNorms::Zero(3, 1);
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy_short, 3, true, norms), InvalidArgument);
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy, 4, true, norms), InvalidArgument);  // 6 % 4 != 0
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy, 0, true, norms), InvalidArgument);
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy, -2, true, norms), InvalidArgument);
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy, 2, true, norms), InvalidArgument);  // norms has 3 rows
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy, 3, true, norms, 1), InvalidArgument);
  EXPECT_THROW(accumulate_linear_squared_norms<float>(a, dy, 3, true, norms, 0, static_cast<GhostNormMethod>(5)),
               InvalidArgument);
  Eigen::MatrixXd factors = Eigen::MatrixXd::Ones(3, 1);
  RowMajorMatrix<float> w = RowMajorMatrix<float>::Zero(2, 3), w_wrong = RowMajorMatrix<float>::Zero(3, 2);
  std::vector<float> b(2, 0.0f), b_wrong(3, 0.0f);
  EXPECT_THROW(accumulate_linear_clipped_gradient<float>(a, dy, 3, factors, 0, w_wrong, b), InvalidArgument);
  EXPECT_THROW(accumulate_linear_clipped_gradient<float>(a, dy, 3, factors, 0, w, b_wrong), InvalidArgument);
  EXPECT_THROW(accumulate_linear_clipped_gradient<float>(a, dy, 3, factors, 1, w, b), InvalidArgument);
  EXPECT_THROW(accumulate_linear_clipped_gradient<float>(a, dy, 2, factors, 0, w, b), InvalidArgument);
  RowMajorMatrix<float> empty_a(0, 3), empty_dy(0, 2);
  EXPECT_THROW(accumulate_linear_squared_norms<float>(empty_a, empty_dy, 3, true, norms), InvalidArgument);
  EXPECT_THROW(linear_bias_per_example_gradients<float>(dy, 4), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

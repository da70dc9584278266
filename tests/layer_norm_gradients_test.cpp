// Tests of layer_norm_per_example_gradients: the formula against a long double sum, padding, and
// the clip bound of the dense route the rows go through.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/layer_norm_gradients.hpp"
#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace {

TEST(LayerNormGradients, MatchThePerExampleSums) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  const std::int64_t batch = 3, t = 4, d = 5;
  RowMajorMatrix<float> xhat(batch * t, d), dy(batch * t, d);
  for (Eigen::Index r = 0; r < xhat.rows(); ++r) {
    for (Eigen::Index j = 0; j < d; ++j) {
      xhat(r, j) = normal(rng);
      dy(r, j) = normal(rng);
    }
  }
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch * t), 1);
  mask[5] = 0;
  xhat(5, 2) = std::numeric_limits<float>::quiet_NaN();  // behind padding: must not arrive
  const RowMajorMatrix<float> rows = layer_norm_per_example_gradients<float>(xhat, dy, batch, true, mask);
  ASSERT_EQ(rows.rows(), batch);
  ASSERT_EQ(rows.cols(), 2 * d);
  EXPECT_TRUE(rows.allFinite());
  for (std::int64_t i = 0; i < batch; ++i) {
    for (Eigen::Index j = 0; j < d; ++j) {
      long double gamma = 0, beta = 0;
      for (std::int64_t s = i * t; s < (i + 1) * t; ++s) {
        if (mask[static_cast<std::size_t>(s)] == 0) continue;
        gamma += static_cast<long double>(dy(s, j)) * xhat(s, j);
        beta += dy(s, j);
      }
      EXPECT_NEAR(rows(i, j), static_cast<double>(gamma), 1e-5) << i << " " << j;
      EXPECT_NEAR(rows(i, d + j), static_cast<double>(beta), 1e-5) << i << " " << j;
    }
  }
  const RowMajorMatrix<float> scale_only = layer_norm_per_example_gradients<float>(xhat, dy, batch, false, mask);
  EXPECT_EQ(scale_only.cols(), d);
  EXPECT_EQ(scale_only, rows.leftCols(d));
}

// The rows go through dense clipping, whose bound holds for the rows as computed: each example's
// clipped row stays within C even with huge and cancelling entries.
TEST(LayerNormGradients, ClippedRowsStayWithinTheClipBound) {
  const float big = std::numeric_limits<float>::max() / 4;
  RowMajorMatrix<float> xhat(4, 2), dy(4, 2);
  xhat << 1, 1, 1, -1, 1e-30f, 1, 2, 2;
  dy << big, big, -big, big, 1e-20f, 3, 1, 1;
  const RowMajorMatrix<float> rows = layer_norm_per_example_gradients<float>(xhat, dy, 2);
  const std::vector<std::uint8_t> mask{1, 1};
  std::vector<float> sum(4, 0.0f);
  const ClipFactors f = clip_and_accumulate<float>(rows, mask, ClipConfig::flat(1.0), sum);
  for (Eigen::Index i = 0; i < rows.rows(); ++i) {
    if (!rows.row(i).allFinite()) {
      EXPECT_EQ(f.factors(i, 0), 0.0);  // an overflowed row is dropped, never released
      continue;
    }
    EXPECT_LE((static_cast<long double>(f.factors(i, 0)) * rows.row(i).cast<long double>()).norm(), 1.0L + 1e-6L);
  }
}

TEST(LayerNormGradients, RejectsBadArguments) {
  const RowMajorMatrix<float> a = RowMajorMatrix<float>::Ones(4, 3);
  EXPECT_THROW(layer_norm_per_example_gradients<float>(a, a, 0), InvalidArgument);
  EXPECT_THROW(layer_norm_per_example_gradients<float>(a, a, 3), InvalidArgument);
  EXPECT_THROW(layer_norm_per_example_gradients<float>(a, a.leftCols(2), 2), InvalidArgument);
  EXPECT_THROW(layer_norm_per_example_gradients<float>(a, a, 2, true, std::vector<std::uint8_t>{1, 1}),
               InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

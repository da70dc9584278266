// CPU tests of the math and launch geometry the CUDA kernels share with the host: norm formulas,
// vector widths, which thread reads which column, how rows split into chunks, and a thread-by-thread
// replay of the fused clip kernel checked against the brute-force reference. They run everywhere,
// so the GPU path is tested as far as it can be without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dpsgd/clipping/clip_method.hpp"
#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/clipping/detail/rounding_bounds.hpp"
#include "dpsgd/cuda/detail/kernel_plan.hpp"
#include "support/reference_clipping.hpp"

namespace dpsgd {
namespace {

using namespace dpsgd::cuda::detail;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(KernelNormMath, RoundingGammaIsHighamsBound) {
  using dpsgd::detail::rounding_gamma;
  EXPECT_DOUBLE_EQ(rounding_gamma(10.0, 0x1p-24), 10.0 * 0x1p-24 / (1.0 - 10.0 * 0x1p-24));
  EXPECT_EQ(rounding_gamma(0.0, 0x1p-53), 0.0);
  EXPECT_EQ(rounding_gamma(0x1p23, 0x1p-24), kInf);  // n u >= 1/2: no bound
}

TEST(KernelNormMath, PlainLinearNormBound) {
  using dpsgd::detail::kFloatUnit;
  using dpsgd::detail::plain_linear_norm_bound;
  // An upper bound within a few float ulps of ||a||^2 ||dy||^2 (+ ||dy||^2 with the bias).
  EXPECT_GE(plain_linear_norm_bound(4.0, 9.0, false, kFloatUnit), 36.0);
  EXPECT_LE(plain_linear_norm_bound(4.0, 9.0, false, kFloatUnit), 36.0 * (1.0 + 1e-6));
  EXPECT_GE(plain_linear_norm_bound(4.0, 9.0, true, kFloatUnit), 45.0);
  EXPECT_LE(plain_linear_norm_bound(4.0, 9.0, true, kFloatUnit), 45.0 * (1.0 + 1e-6));
  EXPECT_EQ(plain_linear_norm_bound(0.0, 0.0, true, kFloatUnit), 0.0);
  // inf * 0 must not read as finite, nor NaN as anything but NaN.
  EXPECT_TRUE(std::isnan(plain_linear_norm_bound(kInf, 0.0, false, kFloatUnit)));
  EXPECT_TRUE(std::isnan(plain_linear_norm_bound(0.0, kInf, true, kFloatUnit)));
  EXPECT_TRUE(std::isnan(plain_linear_norm_bound(kNaN, 1.0, false, kFloatUnit)));
  EXPECT_TRUE(std::isnan(plain_linear_norm_bound(1.0, kNaN, false, kFloatUnit)));
}

TEST(KernelNormMath, SequenceBoundsCoverTheirRoundingTerms) {
  using namespace dpsgd::detail;
  // A Gram inner product computed as 0 (total cancellation) still leaves the rounding allowance.
  const double w = 1e6;
  const double gram = gram_weight_norm_bound(0.0, w, 100.0, 10.0, 25.0);
  EXPECT_GT(gram, 0.0);
  EXPECT_GE(gram * gram, (rounding_gamma(102.0, kDoubleUnit) + rounding_gamma(627.0, kDoubleUnit)) * w * w);
  EXPECT_GE(gram_weight_norm_bound(-5.0, 0.0, 4.0, 4.0, 2.0), 0.0);  // a negative sum is not a norm
  EXPECT_GE(materialised_weight_norm_bound(4.0, w, 40.0, 25.0, kFloatUnit), 2.0 + rounding_gamma(27.0, kFloatUnit) * w);
  // The total adds the clipped GEMM's rounding of the example's own 2T + 8 terms.
  const double total = sequence_linear_norm_bound(3.0, 4.0, w, 10.0, 25.0, kFloatUnit);
  EXPECT_GE(total, 25.0 + 2.0 * rounding_gamma(58.0, kFloatUnit) * w * 3.0);
  EXPECT_TRUE(std::isnan(sequence_linear_norm_bound(kNaN, 0.0, 1.0, 1.0, 2.0, kFloatUnit)));
  EXPECT_FALSE(std::isfinite(sequence_linear_norm_bound(1.0, 0.0, kInf, 1.0, 2.0, kFloatUnit)));
}

TEST(KernelNormMath, DenseBoundIsAboveTheSum) {
  using namespace dpsgd::detail;
  EXPECT_EQ(dense_norm_bound(squared_sum_bound(0.0, 1e-6, 0.0), kFloatUnit), 0.0);
  EXPECT_GT(dense_norm_bound(squared_sum_bound(1.0, 1e-6, 0.0), kFloatUnit), 1.0 + 1e-6);
  EXPECT_LT(dense_norm_bound(squared_sum_bound(1.0, 1e-6, 0.0), kFloatUnit), 1.0 + 2e-6);
  EXPECT_LT(dense_norm_bound(1.0, kDoubleUnit), 1.0 + 1e-14);
  EXPECT_GE(squared_sum_bound(0.0, 0.0, 1e-300), 1e-300);  // lost subnormal squares come back
  EXPECT_TRUE(std::isnan(dense_norm_bound(kNaN, kFloatUnit)));
}

TEST(KernelNormMath, RescaledNorm) {
  using dpsgd::detail::rescaled_squared_norm_from;
  EXPECT_EQ(rescaled_squared_norm_from(0.0, 0.0), 0.0);
  EXPECT_EQ(rescaled_squared_norm_from(1e200, 2.0), kInf);  // beyond double: non-finite, dropped
  EXPECT_DOUBLE_EQ(rescaled_squared_norm_from(1e100, 2.0), 2e200);
  EXPECT_EQ(rescaled_squared_norm_from(kInf, 1.0), kInf);
  EXPECT_TRUE(std::isnan(rescaled_squared_norm_from(kNaN, 1.0)));
}

TEST(KernelPlan, VectorWidthNeedsAlignedBaseStrideAndWidth) {
  EXPECT_EQ(vector_width(0x1000, 8, 8, 4), 4);
  EXPECT_EQ(vector_width(0x1000, 8, 8, 8), 2);
  EXPECT_EQ(vector_width(0x1004, 8, 8, 4), 1);   // base off by one float
  EXPECT_EQ(vector_width(0x1000, 10, 8, 4), 1);  // stride not a multiple of 4
  EXPECT_EQ(vector_width(0x1000, 8, 6, 4), 1);   // width not a multiple of 4
  EXPECT_EQ(vector_width(0x1000, 6, 6, 8), 2);
}

TEST(KernelPlan, FusedChunksCoverTheRowOrRefuse) {
  EXPECT_EQ(fused_chunks(1, 4, kFusedThreads), 1);
  EXPECT_EQ(fused_chunks(2048, 4, kFusedThreads), 1);
  EXPECT_EQ(fused_chunks(2049, 4, kFusedThreads), 2);
  EXPECT_EQ(fused_chunks(16384, 4, kFusedThreads), 8);
  EXPECT_EQ(fused_chunks(16385, 4, kFusedThreads), 0);
  EXPECT_EQ(fused_chunks(4096, 1, kFusedThreads), 8);
  EXPECT_EQ(fused_chunks(4097, 1, kFusedThreads), 0);
}

// Every column of a row is read by exactly one (thread, chunk, lane) of the fused kernel, and
// consecutive threads of a warp read consecutive vectors (coalesced).
TEST(KernelPlan, FusedColumnsVisitEachElementOnce) {
  for (const int vector : {1, 2, 4}) {
    for (const std::int64_t width : {1, 3, 4, 511, 512, 2048, 2052, 7000, 4096 * vector}) {
      if (width % vector != 0) continue;
      const int chunks = fused_chunks(width, vector, kFusedThreads);
      if (chunks == 0) {  // too wide for registers: the launcher takes the two-pass path
        EXPECT_GT(width, static_cast<std::int64_t>(kFusedMaxChunks) * kFusedThreads * vector);
        continue;
      }
      std::vector<int> visits(static_cast<std::size_t>(width), 0);
      for (int thread = 0; thread < kFusedThreads; ++thread) {
        for (int k = 0; k < chunks; ++k) {
          const std::int64_t column = fused_column(k, thread, kFusedThreads, vector);
          if (column >= width) continue;
          if (thread > 0) {
            EXPECT_EQ(column - fused_column(k, thread - 1, kFusedThreads, vector), vector);
          }
          for (int e = 0; e < vector; ++e) ++visits[static_cast<std::size_t>(column + e)];
        }
      }
      for (std::int64_t j = 0; j < width; ++j) ASSERT_EQ(visits[static_cast<std::size_t>(j)], 1) << width << " " << j;
    }
  }
}

TEST(KernelPlan, RowChunksPartitionTheRows) {
  for (const std::int64_t rows : {1, 2, 15, 16, 17, 1000, 1024, 65536}) {
    for (const std::int64_t column_blocks : {1, 3, 100, 10000}) {
      const std::int64_t chunks = clipped_sum_row_chunks(rows, column_blocks, 132);
      ASSERT_GE(chunks, 1);
      ASSERT_LE(chunks, std::max<std::int64_t>(1, (rows + 15) / 16));
      EXPECT_EQ(chunk_first_row(rows, chunks, 0), 0);
      EXPECT_EQ(chunk_first_row(rows, chunks, chunks), rows);
      for (std::int64_t c = 0; c < chunks; ++c) {
        const std::int64_t size = chunk_first_row(rows, chunks, c + 1) - chunk_first_row(rows, chunks, c);
        EXPECT_TRUE(size == rows / chunks || size == rows / chunks + 1) << rows << " " << chunks << " " << c;
      }
    }
  }
  EXPECT_EQ(clipped_sum_row_chunks(1024, 10000, 132), 1);  // wide rows: columns alone fill the device
  EXPECT_GT(clipped_sum_row_chunks(1024, 1, 132), 1);      // narrow rows: split the rows
}

TEST(KernelPlan, FusedBlocksAndExampleChunks) {
  EXPECT_EQ(fused_blocks(1, 132), 1);
  EXPECT_EQ(fused_blocks(4, 132), 1);
  EXPECT_EQ(fused_blocks(5, 132), 2);
  EXPECT_EQ(fused_blocks(100000, 132), 132);
  EXPECT_EQ(examples_per_chunk(1000, 1 << 20, 256 << 20), 256);
  EXPECT_EQ(examples_per_chunk(10, 1 << 20, 256 << 20), 10);
  EXPECT_EQ(examples_per_chunk(10, std::int64_t{1} << 40, 256 << 20), 1);  // one huge example still runs
}

// The fused kernel, replayed on the CPU with the same geometry: each block takes rows
// blockIdx, blockIdx + blocks, ...; each thread sums its elements' squares in double, the block adds
// the thread partials, clip_factor decides, each thread accumulates c * v into its own registers,
// blocks write partials, and the partials are added in block order.
std::vector<float> replay_fused(const RowMajorMatrix<float>& rows, const std::vector<std::uint8_t>& mask,
                                double clip_norm, int vector, int multiprocessors, std::vector<double>* norms) {
  const std::int64_t batch = rows.rows(), width = rows.cols();
  const int chunks = fused_chunks(width, vector, kFusedThreads);
  const std::int64_t blocks = fused_blocks(batch, multiprocessors);
  std::vector<float> partials(static_cast<std::size_t>(blocks * width), 0.0f);
  norms->assign(static_cast<std::size_t>(batch), 0.0);
  for (std::int64_t block = 0; block < blocks; ++block) {
    for (std::int64_t r = block; r < batch; r += blocks) {
      double squared = 0.0;
      for (int thread = 0; thread < kFusedThreads; ++thread) {
        double part = 0.0;
        for (int k = 0; k < chunks; ++k) {
          const std::int64_t column = fused_column(k, thread, kFusedThreads, vector);
          for (int e = 0; e < vector && column < width; ++e) part += double(rows(r, column + e)) * rows(r, column + e);
        }
        squared += part;
      }
      (*norms)[static_cast<std::size_t>(r)] = squared;
      const double factor = clip_factor(squared, clip_norm, ClipMethod::kHard, 0.01, mask[static_cast<std::size_t>(r)]);
      if (factor == 0.0) continue;
      for (int thread = 0; thread < kFusedThreads; ++thread) {
        for (int k = 0; k < chunks; ++k) {
          const std::int64_t column = fused_column(k, thread, kFusedThreads, vector);
          for (int e = 0; e < vector && column < width; ++e)
            partials[static_cast<std::size_t>(block * width + column + e)] +=
                static_cast<float>(factor) * rows(r, column + e);
        }
      }
    }
  }
  std::vector<float> sum(static_cast<std::size_t>(width), 0.0f);
  for (std::int64_t j = 0; j < width; ++j) {
    for (std::int64_t b = 0; b < blocks; ++b)
      sum[static_cast<std::size_t>(j)] += partials[static_cast<std::size_t>(b * width + j)];
  }
  return sum;
}

TEST(KernelPlan, FusedReplayMatchesTheReference) {
  std::mt19937_64 rng(20261122);  // seed printed by the failure message below
  for (int trial = 0; trial < 6; ++trial) {
    const std::int64_t batch = 1 + static_cast<std::int64_t>(rng() % 40);
    const int vector = trial % 2 == 0 ? 4 : 1;
    const std::int64_t width = vector * (1 + static_cast<std::int64_t>(rng() % (3000 / vector)));
    const RowMajorMatrix<double> rows = test::random_rows(rng, batch, width);
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch));
    for (auto& m : mask) m = rng() % 5 != 0;
    const ClipConfig config = ClipConfig::flat(1.0);
    std::vector<long double> reference_norms;
    const RowMajorMatrix<double> rounded = rows.cast<float>().cast<double>();
    const std::vector<long double> expected =
        test::reference_clipped_sum(rounded, mask, config, {0, width}, &reference_norms);
    std::vector<double> norms;
    const std::vector<float> sum = replay_fused(rows.cast<float>(), mask, 1.0, vector, 7, &norms);
    SCOPED_TRACE(::testing::Message() << "seed 20261122 trial " << trial << " batch " << batch << " width " << width);
    for (std::int64_t i = 0; i < batch; ++i) {
      const double expected_norm = static_cast<double>(reference_norms[static_cast<std::size_t>(i)]);
      EXPECT_NEAR(std::sqrt(norms[static_cast<std::size_t>(i)]), expected_norm, 1e-12 * (1.0 + expected_norm));
    }
    for (std::int64_t j = 0; j < width; ++j)
      ASSERT_NEAR(sum[static_cast<std::size_t>(j)], static_cast<double>(expected[static_cast<std::size_t>(j)]), 2e-5)
          << j;
  }
}

}  // namespace
}  // namespace dpsgd

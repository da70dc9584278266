// GPU tests (label: gpu): dense clipping kernels against the CPU path on the same inputs; skipped
// without a device. Shapes come from fixed, printed seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/cuda/dense_clipping.hpp"
#include "support/cuda_test_support.hpp"
#include "support/reference_clipping.hpp"

namespace dpsgd {
namespace {

template <typename Scalar>
constexpr double kTolerance = std::is_same_v<Scalar, float> ? 2e-5 : 1e-11;

void expect_same_factors(const ClipFactors& gpu, const ClipFactors& cpu, double tolerance) {
  EXPECT_EQ(gpu.stats.num_examples, cpu.stats.num_examples);
  EXPECT_EQ(gpu.stats.num_clipped, cpu.stats.num_clipped);
  EXPECT_EQ(gpu.stats.num_nonfinite, cpu.stats.num_nonfinite);
  ASSERT_EQ(gpu.factors.rows(), cpu.factors.rows());
  ASSERT_EQ(gpu.factors.cols(), cpu.factors.cols());
  for (Eigen::Index i = 0; i < cpu.factors.size(); ++i)
    EXPECT_NEAR(gpu.factors.data()[i], cpu.factors.data()[i], tolerance * (1.0 + cpu.factors.data()[i])) << i;
}

template <typename Scalar>
void compare_with_cpu(const RowMajorMatrix<Scalar>& rows, const std::vector<std::uint8_t>& mask,
                      const ClipConfig& config, const std::vector<std::int64_t>& offsets, cuda::DenseClipPath path) {
  std::vector<Scalar> cpu_sum(static_cast<std::size_t>(rows.cols()), Scalar(0.5));
  const ClipFactors cpu = clip_and_accumulate<Scalar>(rows, mask, config, cpu_sum, offsets);
  cuda::DeviceContext context;
  const cuda::DeviceBuffer<Scalar> device_rows = test::to_device(rows);
  cuda::DeviceBuffer<Scalar> device_sum = test::to_device(std::vector<Scalar>(cpu_sum.size(), Scalar(0.5)));
  const cuda::DeviceRows<const Scalar> view{device_rows.data(), rows.rows(), rows.cols()};
  const ClipFactors gpu =
      cuda::clip_and_accumulate<Scalar>(context, view, mask, config, device_sum.data(), offsets, path);
  expect_same_factors(gpu, cpu, kTolerance<Scalar>);
  const std::vector<Scalar> gpu_sum = device_sum.download();
  double scale = 1.0;
  for (const Scalar v : cpu_sum) scale = std::max(scale, static_cast<double>(std::abs(v)));
  for (std::size_t j = 0; j < cpu_sum.size(); ++j)
    ASSERT_NEAR(gpu_sum[j], cpu_sum[j], kTolerance<Scalar> * scale * std::sqrt(double(rows.rows()))) << "column " << j;
}

template <typename Scalar>
void random_trials(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 12; ++trial) {
    const Eigen::Index batch = 1 + static_cast<Eigen::Index>(rng() % 300);
    // Widths around the fused limit, odd widths (scalar loads) and wide rows (two passes).
    const Eigen::Index widths[] = {1 + static_cast<Eigen::Index>(rng() % 64),
                                   4 * (1 + static_cast<Eigen::Index>(rng() % 4096)),
                                   1 + static_cast<Eigen::Index>(rng() % 9000),
                                   16384,
                                   16388,
                                   40000};
    const Eigen::Index width = widths[trial % 6];
    RowMajorMatrix<Scalar> rows = test::random_rows(rng, batch, width).template cast<Scalar>();
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch));
    for (auto& m : mask) m = rng() % 6 != 0;  // about one slot in six is padding
    if (batch > 2) {
      rows.row(1).setZero();
      rows(2, width / 2) = std::numeric_limits<Scalar>::quiet_NaN();
      mask[2] = 1;
    }
    const ClipMethod method = trial % 3 == 2 ? ClipMethod::kAutomatic : ClipMethod::kHard;
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " trial " << trial << " batch " << batch << " width "
                                      << width);
    for (const auto path : {cuda::DenseClipPath::kAuto, cuda::DenseClipPath::kTwoPass}) {
      compare_with_cpu<Scalar>(rows, mask, ClipConfig::flat(1.0, method), {}, path);
    }
    if (width >= 3) {
      const std::vector<std::int64_t> offsets{0, 1, width / 2 + 1, width};
      compare_with_cpu<Scalar>(rows, mask, ClipConfig::per_group({0.5, 1.0, 0.25}, method), offsets,
                               cuda::DenseClipPath::kAuto);
    }
  }
}

TEST(CudaDenseClipping, MatchesCpuOnRandomShapesFloat) {
  DPSGD_SKIP_WITHOUT_GPU();
  random_trials<float>(1001);
}

TEST(CudaDenseClipping, MatchesCpuOnRandomShapesDouble) {
  DPSGD_SKIP_WITHOUT_GPU();
  random_trials<double>(1002);
}

TEST(CudaDenseClipping, FusedPathMatchesTwoPassAndIsDeterministic) {
  DPSGD_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(1003);
  const RowMajorMatrix<float> rows = test::random_rows(rng, 1000, 4096).cast<float>();
  const std::vector<std::uint8_t> mask(1000, 1);
  cuda::DeviceContext context;
  const auto device_rows = test::to_device(rows);
  const cuda::DeviceRows<const float> view{device_rows.data(), 1000, 4096};
  std::vector<std::vector<float>> sums;
  for (const auto path : {cuda::DenseClipPath::kFused, cuda::DenseClipPath::kFused, cuda::DenseClipPath::kTwoPass}) {
    cuda::DeviceBuffer<float> sum(4096);
    sum.set_zero();
    cuda::clip_and_accumulate<float>(context, view, mask, ClipConfig::flat(1.0), sum.data(), {}, path);
    sums.push_back(sum.download());
  }
  EXPECT_EQ(sums[0], sums[1]);  // bit-identical run to run
  for (std::size_t j = 0; j < sums[0].size(); ++j) EXPECT_NEAR(sums[0][j], sums[2][j], 1e-4f);
}

TEST(CudaDenseClipping, StridedAndMisalignedViews) {
  DPSGD_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(1004);
  const RowMajorMatrix<float> wide = test::random_rows(rng, 50, 1031).cast<float>();
  // Columns 1 .. 1001 of each row: base off 16-byte alignment, stride 1031.
  const RowMajorMatrix<float> block = wide.middleCols(1, 1000);
  const std::vector<std::uint8_t> mask(50, 1);
  std::vector<float> cpu_sum(1000, 0.0f);
  const ClipFactors cpu = clip_and_accumulate<float>(block, mask, ClipConfig::flat(0.5), cpu_sum);
  cuda::DeviceContext context;
  const auto device_wide = test::to_device(wide);
  cuda::DeviceBuffer<float> sum(1000);
  sum.set_zero();
  const ClipFactors gpu =
      cuda::clip_and_accumulate<float>(context, cuda::DeviceRows<const float>{device_wide.data() + 1, 50, 1000, 1031},
                                       mask, ClipConfig::flat(0.5), sum.data());
  expect_same_factors(gpu, cpu, 1e-5);
  const std::vector<float> gpu_sum = sum.download();
  for (std::size_t j = 0; j < 1000; ++j) ASSERT_NEAR(gpu_sum[j], cpu_sum[j], 1e-5f) << j;
}

TEST(CudaDenseClipping, HugeDoubleNormsAreRescaledAsOnTheCpu) {
  DPSGD_SKIP_WITHOUT_GPU();
  RowMajorMatrix<double> rows(3, 8);
  rows.setConstant(1e200);  // squares overflow double; the norm (2.8e200) does not
  rows.row(1).setConstant(1.0);
  rows(2, 3) = std::numeric_limits<double>::infinity();
  compare_with_cpu<double>(rows, {1, 1, 1}, ClipConfig::flat(1.0), {}, cuda::DenseClipPath::kFused);
  compare_with_cpu<double>(rows, {1, 1, 1}, ClipConfig::flat(1.0), {}, cuda::DenseClipPath::kTwoPass);
}

TEST(CudaDenseClipping, ComposableCallsMatchTheCpu) {
  DPSGD_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(1005);
  const RowMajorMatrix<float> block_a = test::random_rows(rng, 64, 300).cast<float>();
  const RowMajorMatrix<float> block_b = test::random_rows(rng, 64, 77).cast<float>();
  std::vector<std::uint8_t> mask(64, 1);
  mask[5] = 0;
  const ClipConfig config = ClipConfig::flat(1.0);
  SquaredNorms cpu_norms = SquaredNorms::Zero(64, 1);
  accumulate_squared_norms<float>(block_a, cpu_norms);
  accumulate_squared_norms<float>(block_b, cpu_norms);
  const ClipFactors cpu = compute_clip_factors(cpu_norms, mask, config);
  std::vector<float> cpu_sum_a(300, 0.0f);
  accumulate_clipped_sum<float>(block_a, cpu.factors, 0, cpu_sum_a);

  cuda::DeviceContext context;
  const auto a = test::to_device(block_a);
  const auto b = test::to_device(block_b);
  cuda::DeviceSquaredNorms norms(context, 64, 1);
  cuda::accumulate_squared_norms(context, cuda::DeviceRows<const float>{a.data(), 64, 300}, norms);
  cuda::accumulate_squared_norms(context, cuda::DeviceRows<const float>{b.data(), 64, 77}, norms);
  cuda::DeviceClipFactors factors;
  const ClipFactors gpu = cuda::compute_clip_factors(context, norms, mask, config, factors);
  expect_same_factors(gpu, cpu, 1e-5);
  cuda::DeviceBuffer<float> sum(300);
  sum.set_zero();
  cuda::accumulate_clipped_sum(context, cuda::DeviceRows<const float>{a.data(), 64, 300}, factors, 0, sum.data());
  const std::vector<float> gpu_sum = sum.download();
  for (std::size_t j = 0; j < 300; ++j) ASSERT_NEAR(gpu_sum[j], cpu_sum_a[j], 1e-5f) << j;
}

TEST(CudaDenseClipping, RejectsBadArguments) {
  DPSGD_SKIP_WITHOUT_GPU();
  cuda::DeviceContext context;
  cuda::DeviceBuffer<float> rows(40), sum(10);
  const cuda::DeviceRows<const float> view{rows.data(), 4, 10};
  const std::vector<std::uint8_t> mask(4, 1);
  const ClipConfig config = ClipConfig::flat(1.0);
  std::vector<float> host(40);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, cuda::DeviceRows<const float>{nullptr, 4, 10}, mask, config,
                                                sum.data()),
               InvalidArgument);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, cuda::DeviceRows<const float>{host.data(), 4, 10}, mask,
                                                config, sum.data()),
               InvalidArgument);  // host memory
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, cuda::DeviceRows<const float>{rows.data(), 0, 10}, {}, config,
                                                sum.data()),
               InvalidArgument);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, cuda::DeviceRows<const float>{rows.data(), 4, 10, 5}, mask,
                                                config, sum.data()),
               InvalidArgument);  // stride < cols
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, std::vector<std::uint8_t>(3, 1), config, sum.data()),
               InvalidArgument);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, mask, config, nullptr), InvalidArgument);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, mask, ClipConfig::flat(-1.0), sum.data()),
               InvalidArgument);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, mask, ClipConfig::flat(std::nan("")), sum.data()),
               InvalidArgument);
  const std::vector<std::int64_t> offsets{0, 4, 10};
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, mask, config, sum.data(), offsets), InvalidArgument);
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, mask, ClipConfig::per_group({1.0, 1.0}), sum.data(),
                                                offsets, cuda::DenseClipPath::kFused),
               InvalidArgument);  // fused needs one group
  EXPECT_THROW(cuda::clip_and_accumulate<float>(context, view, mask, config, sum.data(), {},
                                                static_cast<cuda::DenseClipPath>(7)),
               InvalidArgument);
  cuda::DeviceSquaredNorms norms(context, 4, 1);
  EXPECT_THROW(cuda::accumulate_squared_norms<float>(context, cuda::DeviceRows<const float>{rows.data(), 3, 10}, norms),
               InvalidArgument);
  EXPECT_THROW(cuda::accumulate_squared_norms<float>(context, view, norms, 1), InvalidArgument);
  EXPECT_THROW(cuda::DeviceSquaredNorms(context, 0, 1), InvalidArgument);
  EXPECT_THROW(cuda::DeviceContext(1 << 20), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

// GPU tests (label: gpu): ghost norms, the clipped weight/bias gradient and DP-BiTFiT bias gradients
// of linear layers against the CPU path; skipped without a device. Shapes come from printed seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/cuda/ghost_linear.hpp"
#include "support/cuda_test_support.hpp"
#include "support/released_norm.hpp"

namespace dpsgd {
namespace {

template <typename Scalar>
RowMajorMatrix<Scalar> random_matrix(std::mt19937_64& rng, Eigen::Index rows, Eigen::Index cols, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  RowMajorMatrix<Scalar> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<Scalar>(normal(rng));
  return m;
}

template <typename Scalar>
constexpr double kTolerance = std::is_same_v<Scalar, float> ? 1e-4 : 1e-10;

struct Shape {
  std::int64_t batch, positions, d_in, d_out;
};

template <typename Scalar>
void compare_layer(std::uint64_t seed, const Shape& s, GhostNormMethod method, bool bias) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " batch " << s.batch << " T " << s.positions << " d_in "
                                    << s.d_in << " d_out " << s.d_out << " method " << static_cast<int>(method));
  std::mt19937_64 rng(seed);
  const std::int64_t rows = s.batch * s.positions;
  RowMajorMatrix<Scalar> a = random_matrix<Scalar>(rng, rows, s.d_in, 1.0);
  RowMajorMatrix<Scalar> dy = random_matrix<Scalar>(rng, rows, s.d_out, 0.3);
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(s.batch), 1);
  if (s.batch > 3) {
    mask[0] = 0;  // padding with garbage
    a(0, 0) = std::numeric_limits<Scalar>::quiet_NaN();
    a(s.positions * 2, 0) = std::numeric_limits<Scalar>::infinity();  // a real example, dropped
    dy.middleRows(3 * s.positions, s.positions).setZero();            // a zero gradient
  }
  const ClipConfig config = ClipConfig::flat(0.7);

  SquaredNorms cpu_norms = SquaredNorms::Zero(s.batch, 1);
  accumulate_linear_squared_norms<Scalar>(a, dy, s.batch, bias, cpu_norms, 0, method);
  const ClipFactors cpu = compute_clip_factors(cpu_norms, mask, config);
  RowMajorMatrix<Scalar> cpu_w = RowMajorMatrix<Scalar>::Constant(s.d_out, s.d_in, Scalar(0.25));
  std::vector<Scalar> cpu_b(static_cast<std::size_t>(s.d_out), Scalar(0.5));
  accumulate_linear_clipped_gradient<Scalar>(a, dy, s.batch, cpu.factors, 0, cpu_w,
                                             bias ? std::span<Scalar>(cpu_b) : std::span<Scalar>());

  cuda::DeviceContext context;
  const auto device_a = test::to_device(a);
  const auto device_dy = test::to_device(dy);
  const cuda::DeviceRows<const Scalar> a_view{device_a.data(), rows, s.d_in};
  const cuda::DeviceRows<const Scalar> dy_view{device_dy.data(), rows, s.d_out};
  cuda::DeviceSquaredNorms norms(context, s.batch, 1);
  cuda::accumulate_linear_squared_norms<Scalar>(context, a_view, dy_view, s.batch, bias, norms, 0, method);
  const SquaredNorms gpu_norms = norms.download(context);
  for (std::int64_t i = 0; i < s.batch; ++i) {
    if (std::isfinite(cpu_norms(i, 0))) {
      EXPECT_NEAR(gpu_norms(i, 0), cpu_norms(i, 0), kTolerance<Scalar> * (1.0 + cpu_norms(i, 0))) << "example " << i;
    } else {
      EXPECT_FALSE(std::isfinite(gpu_norms(i, 0))) << "example " << i;
    }
  }
  cuda::DeviceClipFactors factors;
  const ClipFactors gpu = cuda::compute_clip_factors(context, norms, mask, config, factors);
  EXPECT_EQ(gpu.stats.num_nonfinite, cpu.stats.num_nonfinite);
  EXPECT_EQ(gpu.stats.num_examples, cpu.stats.num_examples);

  cuda::DeviceBuffer<Scalar> w =
      test::to_device(RowMajorMatrix<Scalar>(RowMajorMatrix<Scalar>::Constant(s.d_out, s.d_in, Scalar(0.25))));
  cuda::DeviceBuffer<Scalar> b = test::to_device(std::vector<Scalar>(static_cast<std::size_t>(s.d_out), Scalar(0.5)));
  cuda::accumulate_linear_clipped_gradient<Scalar>(context, a_view, dy_view, s.batch, factors, 0,
                                                   cuda::DeviceRows<Scalar>{w.data(), s.d_out, s.d_in},
                                                   bias ? b.data() : nullptr);
  const RowMajorMatrix<Scalar> gpu_w = test::to_host(w, s.d_out, s.d_in);
  ASSERT_TRUE(gpu_w.allFinite());
  EXPECT_LT(static_cast<double>((gpu_w - cpu_w).norm()), kTolerance<Scalar> * (1.0 + cpu_w.norm()));
  const std::vector<Scalar> gpu_b = b.download();
  for (std::size_t j = 0; j < gpu_b.size(); ++j) EXPECT_NEAR(gpu_b[j], cpu_b[j], kTolerance<Scalar> * 10) << j;
}

TEST(CudaGhostLinear, MatchesCpuOnRandomShapes) {
  DPSGD_SKIP_WITHOUT_GPU();
  std::mt19937_64 shapes(2001);
  for (int trial = 0; trial < 10; ++trial) {
    const Shape s{1 + static_cast<std::int64_t>(shapes() % 40),
                  trial < 3 ? 1 : 1 + static_cast<std::int64_t>(shapes() % 20),
                  1 + static_cast<std::int64_t>(shapes() % 300), 1 + static_cast<std::int64_t>(shapes() % 100)};
    for (const auto method : {GhostNormMethod::kAuto, GhostNormMethod::kGram, GhostNormMethod::kMaterialize}) {
      compare_layer<float>(3000 + trial, s, method, trial % 2 == 0);
      compare_layer<double>(4000 + trial, s, method, trial % 2 == 1);
    }
  }
}

TEST(CudaGhostLinear, LargeLayerChunksTheProducts) {
  DPSGD_SKIP_WITHOUT_GPU();
  // 64 examples of a 512 x 512 layer at T = 64: the materialised products need 64 MiB per 64
  // examples in float; the Gram route 2 MiB. Both paths, one of them chunked by the scratch bound.
  compare_layer<float>(2002, Shape{300, 64, 512, 512}, GhostNormMethod::kMaterialize, true);
  compare_layer<float>(2003, Shape{300, 64, 512, 512}, GhostNormMethod::kGram, true);
}

TEST(CudaGhostLinear, BiasPerExampleGradientsMatchCpu) {
  DPSGD_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(2004);
  const RowMajorMatrix<float> dy = random_matrix<float>(rng, 30 * 7, 33, 1.0);
  const RowMajorMatrix<float> cpu = linear_bias_per_example_gradients<float>(dy, 30);
  cuda::DeviceContext context;
  const auto device_dy = test::to_device(dy);
  cuda::DeviceBuffer<float> out(30 * 33);
  cuda::linear_bias_per_example_gradients<float>(context, cuda::DeviceRows<const float>{device_dy.data(), 210, 33}, 30,
                                                 cuda::DeviceRows<float>{out.data(), 30, 33});
  EXPECT_LT((test::to_host(out, 30, 33) - cpu).norm(), 1e-5f);
}

TEST(CudaGhostLinear, RejectsBadArguments) {
  DPSGD_SKIP_WITHOUT_GPU();
  cuda::DeviceContext context;
  cuda::DeviceBuffer<float> a(60), dy(40), w(20);
  const cuda::DeviceRows<const float> a_view{a.data(), 20, 3}, dy_view{dy.data(), 20, 2};
  cuda::DeviceSquaredNorms norms(context, 4, 1);
  EXPECT_THROW(cuda::accumulate_linear_squared_norms<float>(context, a_view, dy_view, 3, false, norms),
               InvalidArgument);  // 20 rows are not a multiple of 3
  EXPECT_THROW(cuda::accumulate_linear_squared_norms<float>(context, a_view, dy_view, 0, false, norms),
               InvalidArgument);
  EXPECT_THROW(cuda::accumulate_linear_squared_norms<float>(
                   context, a_view, cuda::DeviceRows<const float>{dy.data(), 19, 2}, 4, false, norms),
               InvalidArgument);
  EXPECT_THROW(cuda::accumulate_linear_squared_norms<float>(context, a_view, dy_view, 4, false, norms, 1),
               InvalidArgument);
  EXPECT_THROW(cuda::accumulate_linear_squared_norms<float>(context, a_view, dy_view, 4, false, norms, 0,
                                                            static_cast<GhostNormMethod>(9)),
               InvalidArgument);
  cuda::DeviceClipFactors factors;
  cuda::compute_clip_factors(context, norms, std::vector<std::uint8_t>(4, 1), ClipConfig::flat(1.0), factors);
  EXPECT_THROW(cuda::accumulate_linear_clipped_gradient<float>(context, a_view, dy_view, 4, factors, 0,
                                                               cuda::DeviceRows<float>{w.data(), 3, 2}, nullptr),
               InvalidArgument);  // weight_grad must be d_out x d_in = 2 x 3
  std::vector<float> host(6);
  EXPECT_THROW(cuda::accumulate_linear_clipped_gradient<float>(context, a_view, dy_view, 4, factors, 0,
                                                               cuda::DeviceRows<float>{host.data(), 2, 3}, nullptr),
               InvalidArgument);  // host memory
}

// The clip bound on the GPU route: an example whose per-position gradients cancel over a large common
// activation (the float Gram product loses it) and one whose scaled output gradients underflow must
// add at most C (1 + 1e-4), as on the CPU (clip_bound_test.cpp).
template <typename Scalar>
double gpu_released_ratio(const test::LinearBatch<Scalar>& one, bool bias, double clip, GhostNormMethod method) {
  cuda::DeviceContext context;
  const std::int64_t rows = one.a.rows();
  const auto device_a = test::to_device(one.a);
  const auto device_dy = test::to_device(one.dy);
  const cuda::DeviceRows<const Scalar> a_view{device_a.data(), rows, one.a.cols()};
  const cuda::DeviceRows<const Scalar> dy_view{device_dy.data(), rows, one.dy.cols()};
  cuda::DeviceSquaredNorms norms(context, 1, 1);
  cuda::accumulate_linear_squared_norms<Scalar>(context, a_view, dy_view, 1, bias, norms, 0, method);
  cuda::DeviceClipFactors factors;
  const std::vector<std::uint8_t> mask{1};
  cuda::compute_clip_factors(context, norms, mask, ClipConfig::flat(clip), factors);
  cuda::DeviceBuffer<Scalar> w =
      test::to_device(RowMajorMatrix<Scalar>(RowMajorMatrix<Scalar>::Zero(one.dy.cols(), one.a.cols())));
  cuda::DeviceBuffer<Scalar> b =
      test::to_device(std::vector<Scalar>(static_cast<std::size_t>(one.dy.cols()), Scalar(0)));
  cuda::accumulate_linear_clipped_gradient<Scalar>(context, a_view, dy_view, 1, factors, 0,
                                                   cuda::DeviceRows<Scalar>{w.data(), one.dy.cols(), one.a.cols()},
                                                   bias ? b.data() : nullptr);
  const RowMajorMatrix<Scalar> host_w = test::to_host(w, one.dy.cols(), one.a.cols());
  const std::vector<Scalar> host_b = b.download();
  const long double total =
      test::squared_norm_ld(std::span<const Scalar>(host_w.data(), host_w.size())) + test::squared_norm_ld(host_b);
  return static_cast<double>(std::sqrt(total) / clip);
}

TEST(CudaGhostLinear, AdversarialExamplesStayWithinTheClipBound) {
  DPSGD_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(77);
  for (const std::int64_t t : {2, 25, 196}) {
    for (int draw = 0; draw < 4; ++draw) {
      const test::LinearBatch<float> one = test::cancelling_example<float>(rng, t, 48, 16, 30.0, 1e-3, 1e-6, 6.0, 1.0);
      for (const auto method : {GhostNormMethod::kGram, GhostNormMethod::kMaterialize}) {
        EXPECT_LE(gpu_released_ratio(one, true, 1.0, method), 1.0 + 1e-4) << "T " << t << " draw " << draw;
      }
    }
  }
  test::LinearBatch<float> tiny{RowMajorMatrix<float>::Constant(3, 4, 3e38f),
                                RowMajorMatrix<float>::Constant(3, 3, 1e-38f), 1};
  tiny.dy(1, 0) = -2e-38f;
  for (const auto method : {GhostNormMethod::kGram, GhostNormMethod::kMaterialize}) {
    EXPECT_LE(gpu_released_ratio(tiny, true, 1e-4, method), 1.0 + 1e-4);
  }
}

}  // namespace
}  // namespace dpsgd

// GPU tests (label: gpu): the CUDA noise kernel against the CPU path; skipped without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <span>
#include <vector>

#include "dpsgd/cuda/gaussian_noise.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"

namespace dpsgd {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device present: GPU test skipped"

// The GPU's (host + noise) * scale, through a context on its own stream or on an adopted one.
template <typename Scalar>
std::vector<Scalar> gpu_noise(const std::vector<Scalar>& host, double stddev, NoiseKey key, NoiseMode mode,
                              std::uint64_t first, Scalar scale = Scalar{1}, bool adopted_stream = false) {
  cudaStream_t stream = nullptr;
  if (adopted_stream) {
    EXPECT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  }
  std::vector<Scalar> result;
  {
    cuda::DeviceContext context = adopted_stream ? cuda::DeviceContext::on_stream(stream, 0) : cuda::DeviceContext(0);
    EXPECT_EQ(context.stream(), adopted_stream ? stream : context.stream());
    cuda::DeviceBuffer<Scalar> device(std::span<const Scalar>(host), context.stream());
    if (scale == Scalar{1}) {
      cuda::add_gaussian_noise(context, device.data(), host.size(), stddev, key, mode, first);
    } else {
      cuda::add_scaled_gaussian_noise(context, device.data(), host.size(), stddev, key, mode, first, scale);
    }
    result = device.download(context.stream());
  }
  // The context did not destroy the stream it adopted: it is still usable.
  if (adopted_stream) {
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  }
  return result;
}

TEST(CudaGaussianNoise, MatchesCpuStream) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(20261122);
  for (int trial = 0; trial < 8; ++trial) {
    const std::size_t size = 1 + rng() % 200000;
    const std::uint64_t first = rng() % 7;
    const NoiseKey key{rng(), rng() % 1000, static_cast<std::uint32_t>(rng() % 4)};
    for (NoiseMode mode : {NoiseMode::kStandard, NoiseMode::kSecure}) {
      SCOPED_TRACE(::testing::Message() << "trial " << trial << " size " << size << " first " << first);
      std::vector<double> cpu(size, 1.0);
      add_gaussian_noise<double>(cpu, 2.0, key, mode, first);
      const std::vector<double> gpu = gpu_noise(std::vector<double>(size, 1.0), 2.0, key, mode, first);
      for (std::size_t i = 0; i < size; ++i) ASSERT_NEAR(gpu[i], cpu[i], 1e-12 * (1.0 + std::abs(cpu[i]))) << i;
      std::vector<float> cpu_f(size, 1.0f);
      add_gaussian_noise<float>(cpu_f, 2.0, key, mode, first);
      const std::vector<float> gpu_f = gpu_noise(std::vector<float>(size, 1.0f), 2.0, key, mode, first);
      for (std::size_t i = 0; i < size; ++i) ASSERT_NEAR(gpu_f[i], cpu_f[i], 1e-6f * (1.0f + std::abs(cpu_f[i]))) << i;
    }
  }
}

// The fused scale (the step's division by q N) and stddev 0 (scale only, -0 kept): the CPU's bits.
TEST(CudaGaussianNoise, ScaledNoiseMatchesCpuOnAnAdoptedStream) {
  SKIP_WITHOUT_GPU();
  const NoiseKey key{20261202, 3, 1};
  for (const double stddev : {0.0, 1.5}) {
    for (NoiseMode mode : {NoiseMode::kStandard, NoiseMode::kSecure}) {
      std::vector<float> cpu(1001, -0.0f);
      for (std::size_t i = 0; i < cpu.size(); i += 2) cpu[i] = 0.25f * static_cast<float>(i);
      const std::vector<float> input = cpu;
      add_scaled_gaussian_noise<float>(cpu, stddev, key, mode, 5, 0.125f);
      const std::vector<float> gpu = gpu_noise(input, stddev, key, mode, 5, 0.125f, true);
      for (std::size_t i = 0; i < cpu.size(); ++i) {
        ASSERT_NEAR(gpu[i], cpu[i], 1e-6f * (1.0f + std::abs(cpu[i]))) << i;
        if (stddev == 0.0) {
          ASSERT_EQ(std::signbit(gpu[i]), std::signbit(cpu[i])) << i;
        }
      }
    }
  }
}

TEST(CudaGaussianNoise, RejectsBadArguments) {
  SKIP_WITHOUT_GPU();
  cuda::DeviceContext context(0);
  cuda::DeviceBuffer<float> one(4);
  float* const d = one.data();
  EXPECT_THROW(cuda::add_gaussian_noise(context, static_cast<float*>(nullptr), 4, 1.0, NoiseKey{0, 0, 0}),
               InvalidArgument);
  EXPECT_THROW(cuda::add_gaussian_noise(context, d, 1, -1.0, NoiseKey{0, 0, 0}), InvalidArgument);
  EXPECT_THROW(cuda::add_gaussian_noise(context, d, 1, std::nan(""), NoiseKey{0, 0, 0}), InvalidArgument);
  EXPECT_THROW(cuda::add_gaussian_noise(context, d, 1, 1.0, NoiseKey{0, 0, 0}, static_cast<NoiseMode>(3)),
               InvalidArgument);
  EXPECT_THROW(cuda::add_gaussian_noise(context, d, 4, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard,
                                        (std::uint64_t{1} << 33) - 2),
               InvalidArgument);
  EXPECT_THROW(cuda::add_scaled_gaussian_noise(context, d, 4, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, 0, -1.0f),
               InvalidArgument);
  EXPECT_NO_THROW(cuda::add_gaussian_noise(context, static_cast<float*>(nullptr), 0, 1.0, NoiseKey{0, 0, 0}));
}

}  // namespace
}  // namespace dpsgd

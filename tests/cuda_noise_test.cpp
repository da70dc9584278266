// GPU tests (label: gpu): the CUDA noise kernel against the CPU path; skipped without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "dpsgd/cuda/gaussian_noise.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"

namespace dpsgd {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device present: GPU test skipped"

template <typename Scalar>
std::vector<Scalar> gpu_noise(std::vector<Scalar> host, double stddev, NoiseKey key, NoiseMode mode,
                              std::uint64_t first) {
  Scalar* device = nullptr;
  EXPECT_EQ(cudaMalloc(&device, host.size() * sizeof(Scalar)), cudaSuccess);
  cudaMemcpy(device, host.data(), host.size() * sizeof(Scalar), cudaMemcpyHostToDevice);
  cuda::add_gaussian_noise(device, host.size(), stddev, key, mode, first);
  cudaMemcpy(host.data(), device, host.size() * sizeof(Scalar), cudaMemcpyDeviceToHost);
  cudaFree(device);
  return host;
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

TEST(CudaGaussianNoise, RejectsBadArgumentsWithoutADevice) {
  // Argument checks run on the host before any launch, so they hold on machines without a GPU.
  EXPECT_THROW(cuda::add_gaussian_noise(static_cast<float*>(nullptr), 4, 1.0, NoiseKey{0, 0, 0}), InvalidArgument);
  float dummy = 0.0f;
  EXPECT_THROW(cuda::add_gaussian_noise(&dummy, 1, -1.0, NoiseKey{0, 0, 0}), InvalidArgument);
  EXPECT_THROW(cuda::add_gaussian_noise(&dummy, 1, std::nan(""), NoiseKey{0, 0, 0}), InvalidArgument);
  EXPECT_THROW(cuda::add_gaussian_noise(&dummy, 1, 1.0, NoiseKey{0, 0, 0}, static_cast<NoiseMode>(3)), InvalidArgument);
  EXPECT_THROW(
      cuda::add_gaussian_noise(&dummy, 4, 1.0, NoiseKey{0, 0, 0}, NoiseMode::kStandard, (std::uint64_t{1} << 33) - 2),
      InvalidArgument);
  EXPECT_NO_THROW(cuda::add_gaussian_noise(static_cast<float*>(nullptr), 0, 1.0, NoiseKey{0, 0, 0}));
}

}  // namespace
}  // namespace dpsgd

// Benchmark: the same operations and shapes on the CPU (Eigen + OpenMP) and the GPU (dpsgd::cuda),
// each reporting bytes/s of its compulsory traffic. GPU cases report an error (and are skipped by
// benchmarks/gpu_vs_cpu_table.py) where no CUDA device is present.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/cuda/dense_clipping.hpp"
#include "dpsgd/cuda/gaussian_noise.hpp"
#include "dpsgd/cuda/ghost_linear.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"

namespace {

using dpsgd::RowMajorMatrix;

bool skip_without_gpu(benchmark::State& state) {
  if (dpsgd::cuda::device_available()) return false;
  state.SkipWithError("no CUDA device present");
  return true;
}

dpsgd::cuda::DeviceContext& gpu() {
  static dpsgd::cuda::DeviceContext context;
  return context;
}

RowMajorMatrix<float> random_matrix(Eigen::Index rows, Eigen::Index cols) {
  return RowMajorMatrix<float>::Random(rows, cols);
}

// --- dense clip and sum: bytes = one read of the B x P matrix ------------------------------------
void dense_bytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * state.range(0) * state.range(1) * std::int64_t{4});
}

void BM_DenseClip_cpu(benchmark::State& state) {
  const RowMajorMatrix<float> rows = random_matrix(state.range(0), state.range(1));
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(state.range(0)), 1);
  std::vector<float> sum(static_cast<std::size_t>(state.range(1)));
  for (auto _ : state)
    benchmark::DoNotOptimize(dpsgd::clip_and_accumulate<float>(rows, mask, dpsgd::ClipConfig::flat(1.0), sum));
  dense_bytes(state);
}

void BM_DenseClip_gpu(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const RowMajorMatrix<float> host = random_matrix(state.range(0), state.range(1));
  const dpsgd::cuda::DeviceBuffer<float> rows(
      std::span<const float>(host.data(), static_cast<std::size_t>(host.size())));
  dpsgd::cuda::DeviceBuffer<float> sum(static_cast<std::size_t>(state.range(1)));
  sum.set_zero();
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(state.range(0)), 1);
  const dpsgd::cuda::DeviceRows<const float> view{rows.data(), state.range(0), state.range(1)};
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        dpsgd::cuda::clip_and_accumulate<float>(gpu(), view, mask, dpsgd::ClipConfig::flat(1.0), sum.data()));
  }
  dense_bytes(state);
}

// --- Gaussian noise in place: bytes = read + write of n floats ------------------------------------
void BM_Noise_cpu(benchmark::State& state) {
  std::vector<float> values(static_cast<std::size_t>(state.range(0)));
  std::uint64_t step = 0;
  for (auto _ : state) dpsgd::add_gaussian_noise<float>(values, 1.0, dpsgd::NoiseKey{7, step++, 0});
  state.SetBytesProcessed(state.iterations() * state.range(0) * std::int64_t{8});
}

void BM_Noise_gpu(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  dpsgd::cuda::DeviceBuffer<float> values(static_cast<std::size_t>(state.range(0)));
  values.set_zero();
  std::uint64_t step = 0;
  for (auto _ : state) {
    dpsgd::cuda::add_gaussian_noise(gpu(), values.data(), values.size(), 1.0, dpsgd::NoiseKey{7, step++, 0});
    gpu().synchronize();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * std::int64_t{8});
}

// --- linear layer: ghost norms + clipped gradient; bytes = one read of A and dY --------------------
// Args: batch, positions, d_in, d_out.
void linear_bytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * state.range(0) * state.range(1) * (state.range(2) + state.range(3)) *
                          std::int64_t{4});
}

void BM_LinearGhostStep_cpu(benchmark::State& state) {
  const std::int64_t batch = state.range(0), t = state.range(1), d_in = state.range(2), d_out = state.range(3);
  const RowMajorMatrix<float> a = random_matrix(batch * t, d_in), dy = random_matrix(batch * t, d_out);
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch), 1);
  RowMajorMatrix<float> w = RowMajorMatrix<float>::Zero(d_out, d_in);
  std::vector<float> b(static_cast<std::size_t>(d_out));
  for (auto _ : state) {
    dpsgd::SquaredNorms norms = dpsgd::SquaredNorms::Zero(batch, 1);
    dpsgd::accumulate_linear_squared_norms<float>(a, dy, batch, true, norms);
    const dpsgd::ClipFactors f = dpsgd::compute_clip_factors(norms, mask, dpsgd::ClipConfig::flat(1.0));
    dpsgd::accumulate_linear_clipped_gradient<float>(a, dy, batch, f.factors, 0, w, b);
  }
  linear_bytes(state);
}

void BM_LinearGhostStep_gpu(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const std::int64_t batch = state.range(0), t = state.range(1), d_in = state.range(2), d_out = state.range(3);
  const RowMajorMatrix<float> a_host = random_matrix(batch * t, d_in), dy_host = random_matrix(batch * t, d_out);
  const dpsgd::cuda::DeviceBuffer<float> a(
      std::span<const float>(a_host.data(), static_cast<std::size_t>(a_host.size())));
  const dpsgd::cuda::DeviceBuffer<float> dy(
      std::span<const float>(dy_host.data(), static_cast<std::size_t>(dy_host.size())));
  dpsgd::cuda::DeviceBuffer<float> w(static_cast<std::size_t>(d_out * d_in)), b(static_cast<std::size_t>(d_out));
  w.set_zero();
  b.set_zero();
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch), 1);
  const dpsgd::cuda::DeviceRows<const float> a_view{a.data(), batch * t, d_in}, dy_view{dy.data(), batch * t, d_out};
  dpsgd::cuda::DeviceSquaredNorms norms(gpu(), batch, 1);
  dpsgd::cuda::DeviceClipFactors factors;
  for (auto _ : state) {
    norms.values.set_zero(gpu().stream());
    dpsgd::cuda::accumulate_linear_squared_norms<float>(gpu(), a_view, dy_view, batch, true, norms);
    dpsgd::cuda::compute_clip_factors(gpu(), norms, mask, dpsgd::ClipConfig::flat(1.0), factors);
    dpsgd::cuda::accumulate_linear_clipped_gradient<float>(
        gpu(), a_view, dy_view, batch, factors, 0, dpsgd::cuda::DeviceRows<float>{w.data(), d_out, d_in}, b.data());
    gpu().synchronize();
  }
  linear_bytes(state);
}

#define DPSGD_DENSE_SHAPES ->Args({1024, 10000})->Args({1024, 100000})->Args({256, 1000000})
#define DPSGD_NOISE_SHAPES ->Arg(1 << 20)->Arg(1 << 24)
#define DPSGD_LINEAR_SHAPES ->Args({1024, 1, 1024, 1024})->Args({64, 128, 768, 768})
BENCHMARK(BM_DenseClip_cpu) DPSGD_DENSE_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DenseClip_gpu) DPSGD_DENSE_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Noise_cpu) DPSGD_NOISE_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Noise_gpu) DPSGD_NOISE_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LinearGhostStep_cpu) DPSGD_LINEAR_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LinearGhostStep_gpu) DPSGD_LINEAR_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

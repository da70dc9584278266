// Benchmark: ghost norms and the clipped-gradient GEMM of one linear layer, against materialising.
#include <benchmark/benchmark.h>

#include "dpsgd/clipping/ghost_linear.hpp"

namespace {

// Args: batch, positions T, d_in, d_out, method.
void BM_GhostNorms(benchmark::State& state) {
  const Eigen::Index batch = state.range(0), t = state.range(1), d_in = state.range(2), d_out = state.range(3);
  const auto method = static_cast<dpsgd::GhostNormMethod>(state.range(4));
  const dpsgd::RowMajorMatrix<float> a = dpsgd::RowMajorMatrix<float>::Random(batch * t, d_in);
  const dpsgd::RowMajorMatrix<float> dy = dpsgd::RowMajorMatrix<float>::Random(batch * t, d_out);
  for (auto _ : state) {
    dpsgd::SquaredNorms norms = dpsgd::SquaredNorms::Zero(batch, 1);
    dpsgd::accumulate_linear_squared_norms<float>(a, dy, batch, true, norms, 0, method);
    benchmark::DoNotOptimize(norms.data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * t * (d_in + d_out) * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(BM_GhostNorms)
    ->Args({1024, 1, 784, 512, 0})
    ->Args({256, 1, 3072, 1024, 0})
    ->Args({64, 16, 512, 512, 1})
    ->Args({64, 16, 512, 512, 2})
    ->Args({32, 256, 64, 64, 1})
    ->Args({32, 256, 64, 64, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The clipped weight gradient dY^T diag(c) A: one GEMM of (d_out x B T) (B T x d_in).
void BM_ClippedLinearGradient(benchmark::State& state) {
  const Eigen::Index batch = state.range(0), d_in = state.range(1), d_out = state.range(2);
  const dpsgd::RowMajorMatrix<float> a = dpsgd::RowMajorMatrix<float>::Random(batch, d_in);
  const dpsgd::RowMajorMatrix<float> dy = dpsgd::RowMajorMatrix<float>::Random(batch, d_out);
  const Eigen::MatrixXd factors = Eigen::MatrixXd::Constant(batch, 1, 0.5);
  dpsgd::RowMajorMatrix<float> w(d_out, d_in);
  std::vector<float> b(static_cast<std::size_t>(d_out));
  for (auto _ : state) {
    w.setZero();
    dpsgd::accumulate_linear_clipped_gradient<float>(a, dy, batch, factors, 0, w, b);
    benchmark::DoNotOptimize(w.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(batch * d_in * d_out) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ClippedLinearGradient)
    ->Args({1024, 784, 512})
    ->Args({256, 3072, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

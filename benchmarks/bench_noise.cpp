// Benchmark: add_gaussian_noise on float and double buffers; items/s = Gaussian samples per second.
#include <benchmark/benchmark.h>

#include <vector>

#include "dpsgd/noise/gaussian_noise.hpp"

namespace {

template <typename Scalar>
void BM_GaussianNoise(benchmark::State& state) {
  std::vector<Scalar> values(static_cast<std::size_t>(state.range(0)));
  const auto mode = static_cast<dpsgd::NoiseMode>(state.range(1));
  std::uint64_t step = 0;
  for (auto _ : state) {
    dpsgd::add_gaussian_noise<Scalar>(values, 1.0, dpsgd::NoiseKey{1, step++, 0}, mode);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * state.range(0) * static_cast<std::int64_t>(sizeof(Scalar)));
}
BENCHMARK(BM_GaussianNoise<float>)
    ->Args({1 << 20, 0})
    ->Args({1 << 24, 0})
    ->Args({1 << 24, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_GaussianNoise<double>)->Args({1 << 24, 0})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

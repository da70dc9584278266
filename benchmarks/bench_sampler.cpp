// Benchmark: one PoissonSampler batch, including N = 10^9 at q = 10^-6; items/s = batch members drawn.
#include <benchmark/benchmark.h>

#include "dpsgd/sampling/binomial_tail.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace {

// Args: dataset size, 1 / q.
void BM_PoissonSample(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const double q = 1.0 / static_cast<double>(state.range(1));
  const std::int64_t capacity = dpsgd::capacity_for_truncation_probability(n, q, 1e-9).capacity;
  const dpsgd::PoissonSampler sampler(n, q, capacity, 1);
  std::uint64_t step = 0;
  std::int64_t members = 0;
  for (auto _ : state) {
    const dpsgd::Batch batch = sampler.sample(step++);
    members += batch.real_size;
    benchmark::DoNotOptimize(batch.indices.data());
  }
  state.SetItemsProcessed(members);
  state.counters["capacity"] = static_cast<double>(capacity);
}
BENCHMARK(BM_PoissonSample)
    ->Args({60000, 234})
    ->Args({1'000'000'000, 1'000'000})
    ->Args({1'000'000'000, 1000})
    ->Unit(benchmark::kMicrosecond);

void BM_CapacityForTruncation(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(dpsgd::capacity_for_truncation_probability(1'000'000'000, 1e-6, 1e-9));
  }
}
BENCHMARK(BM_CapacityForTruncation)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

// Benchmark: clip_and_accumulate over a dense B x P float matrix (bytes/s counts one read), beside STREAM in the same
// run.
#include <benchmark/benchmark.h>

#include <random>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "stream_kernels.hpp"

namespace {

void BM_ClipAndAccumulate(benchmark::State& state) {
  const Eigen::Index batch = state.range(0), width = state.range(1);
  dpsgd::RowMajorMatrix<float> rows = dpsgd::RowMajorMatrix<float>::Random(batch, width);
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch), 1);
  std::vector<float> sum(static_cast<std::size_t>(width));
  const dpsgd::ClipConfig config = dpsgd::ClipConfig::flat(1.0);
  for (auto _ : state) {
    auto result = dpsgd::clip_and_accumulate<float>(rows, mask, config, sum);
    benchmark::DoNotOptimize(result);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * batch * width * static_cast<std::int64_t>(sizeof(float)));
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_ClipAndAccumulate)
    ->Args({256, 1000})
    ->Args({1024, 10000})
    ->Args({1024, 100000})
    ->Args({256, 1000000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The bandwidth the clip is judged against, measured in the same run: STREAM triad, and a plain
// read (the clip's bytes/s count one read of the matrix).
void BM_StreamTriad(benchmark::State& state) { dpsgd::bench::stream_triad(state); }
void BM_StreamRead(benchmark::State& state) { dpsgd::bench::stream_read(state); }
BENCHMARK(BM_StreamTriad)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamRead)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// Benchmark: STREAM-style copy, scale, add and triad over arrays far larger than the caches: the memory bandwidth the
// clipping kernels are judged against.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "stream_kernels.hpp"

namespace {

using dpsgd::bench::StreamArrays;

// Copy and scale touch two arrays, add three; triad and read come from stream_kernels.hpp.
void BM_StreamCopy(benchmark::State& state) {
  StreamArrays& arrays = StreamArrays::instance();
  const float* a = arrays.a.get();
  float* c = arrays.c.get();
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < StreamArrays::kElements; ++i) c[i] = a[i];
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * StreamArrays::kElements * static_cast<std::int64_t>(sizeof(float)));
}

void BM_StreamScale(benchmark::State& state) {
  StreamArrays& arrays = StreamArrays::instance();
  float* b = arrays.b.get();
  const float* c = arrays.c.get();
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < StreamArrays::kElements; ++i) b[i] = 3.0f * c[i];
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * StreamArrays::kElements * static_cast<std::int64_t>(sizeof(float)));
}

void BM_StreamAdd(benchmark::State& state) {
  StreamArrays& arrays = StreamArrays::instance();
  const float *a = arrays.a.get(), *b = arrays.b.get();
  float* c = arrays.c.get();
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < StreamArrays::kElements; ++i) c[i] = a[i] + b[i];
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * StreamArrays::kElements * static_cast<std::int64_t>(sizeof(float)));
}

void BM_StreamTriad(benchmark::State& state) { dpsgd::bench::stream_triad(state); }
void BM_StreamRead(benchmark::State& state) { dpsgd::bench::stream_read(state); }

BENCHMARK(BM_StreamCopy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamScale)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamAdd)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamTriad)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamRead)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

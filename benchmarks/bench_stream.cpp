// Benchmark: STREAM-style copy, scale, add and triad over arrays far larger than the caches: the memory bandwidth the
// clipping kernels are judged against.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

// The four kernels of McCalpin's STREAM (bytes counted as STREAM does: reads + writes, no
// write-allocate traffic), in float, OpenMP-parallel with static schedules, first-touched by the
// same threads that later read them.
namespace {

constexpr std::int64_t kElements = std::int64_t{1} << 26;  // 256 MiB per float array

struct Arrays {
  std::unique_ptr<float[]> a{new float[kElements]}, b{new float[kElements]}, c{new float[kElements]};
  Arrays() {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < kElements; ++i) {
      a[i] = 1.0f;
      b[i] = 2.0f;
      c[i] = 0.0f;
    }
  }
};

Arrays& arrays() {
  static Arrays instance;
  return instance;
}

enum Kernel { kCopy, kScale, kAdd, kTriad };

void BM_Stream(benchmark::State& state) {
  const auto kernel = static_cast<Kernel>(state.range(0));
  float* a = arrays().a.get();
  float* b = arrays().b.get();
  float* c = arrays().c.get();
  const float scalar = 3.0f;
  for (auto _ : state) {
    switch (kernel) {
      case kCopy:
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < kElements; ++i) c[i] = a[i];
        break;
      case kScale:
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < kElements; ++i) b[i] = scalar * c[i];
        break;
      case kAdd:
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < kElements; ++i) c[i] = a[i] + b[i];
        break;
      case kTriad:
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < kElements; ++i) a[i] = b[i] + scalar * c[i];
        break;
    }
    benchmark::ClobberMemory();
  }
  const std::int64_t arrays_touched = (kernel == kCopy || kernel == kScale) ? 2 : 3;
  state.SetBytesProcessed(state.iterations() * arrays_touched * kElements * static_cast<std::int64_t>(sizeof(float)));
  state.SetLabel(kernel == kCopy ? "copy" : kernel == kScale ? "scale" : kernel == kAdd ? "add" : "triad");
}
BENCHMARK(BM_Stream)->DenseRange(kCopy, kTriad)->Unit(benchmark::kMillisecond)->UseRealTime();

// One read of the array, as the clip benchmark counts bytes: the bandwidth a norm pass can reach
// (simd: the reduction may be reassociated, as the clip kernels' chunked sums are).
void BM_StreamRead(benchmark::State& state) {
  const float* a = arrays().a.get();
  for (auto _ : state) {
    float total = 0.0f;
#pragma omp parallel for simd schedule(static) reduction(+ : total)
    for (std::int64_t i = 0; i < kElements; ++i) total += a[i];
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(state.iterations() * kElements * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(BM_StreamRead)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

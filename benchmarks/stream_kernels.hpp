// STREAM-style kernels (McCalpin) shared by bench_stream and bench_dense_clip, so a clip run also measures the
// bandwidth it is judged against.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

namespace dpsgd::bench {

// Three float arrays far larger than the caches, first-touched by the threads that later use them.
struct StreamArrays {
  static constexpr std::int64_t kElements = std::int64_t{1} << 26;  // 256 MiB per array
  std::unique_ptr<float[]> a{new float[kElements]}, b{new float[kElements]}, c{new float[kElements]};
  StreamArrays() {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < kElements; ++i) {
      a[i] = 1.0f;
      b[i] = 2.0f;
      c[i] = 0.0f;
    }
  }
  static StreamArrays& instance() {
    static StreamArrays arrays;
    return arrays;
  }
};

// a = b + s c over the arrays; bytes counted as STREAM does: two reads and one write.
inline void stream_triad(benchmark::State& state) {
  StreamArrays& arrays = StreamArrays::instance();
  float *a = arrays.a.get(), *b = arrays.b.get(), *c = arrays.c.get();
  const float scalar = 3.0f;
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < StreamArrays::kElements; ++i) a[i] = b[i] + scalar * c[i];
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * StreamArrays::kElements * static_cast<std::int64_t>(sizeof(float)));
}

// One read of an array (a sum), as the clip benchmark counts its bytes; simd lets the reduction
// reassociate, as the clip kernels' chunked sums do.
inline void stream_read(benchmark::State& state) {
  const float* a = StreamArrays::instance().a.get();
  for (auto _ : state) {
    float total = 0.0f;
#pragma omp parallel for simd schedule(static) reduction(+ : total)
    for (std::int64_t i = 0; i < StreamArrays::kElements; ++i) total += a[i];
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(state.iterations() * StreamArrays::kElements * static_cast<std::int64_t>(sizeof(float)));
}

}  // namespace dpsgd::bench

// Benchmark: scattering features (J = 2, L = 8) of 28 x 28 images on all threads; items/s = images.
#include <benchmark/benchmark.h>

#include <cmath>

#include "dpsgd/features/group_normalisation.hpp"
#include "dpsgd/features/scattering_2d.hpp"

namespace {

dpsgd::RowMajorMatrix<float> images(Eigen::Index count) {
  dpsgd::RowMajorMatrix<float> x(count, 784);
  for (Eigen::Index r = 0; r < count; ++r)
    for (Eigen::Index c = 0; c < 784; ++c) x(r, c) = static_cast<float>(0.5 + 0.5 * std::sin(0.7 * r + 0.013 * c * c));
  return x;
}

// Arg: images per call (the transform of a whole data set is one call).
void BM_ScatteringFeatures(benchmark::State& state) {
  const dpsgd::Scattering2D scattering({});
  const dpsgd::RowMajorMatrix<float> x = images(state.range(0));
  for (auto _ : state) {
    dpsgd::RowMajorMatrix<float> features = scattering.transform_rows(x);
    dpsgd::group_normalise_rows(features, scattering.channels(), 27);
    benchmark::DoNotOptimize(features.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ScatteringFeatures)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

// The filter bank and FFTW plans: what constructing a Scattering2D costs once per program.
void BM_ScatteringSetup(benchmark::State& state) {
  for (auto _ : state) {
    const dpsgd::Scattering2D scattering({});
    benchmark::DoNotOptimize(&scattering);
  }
}
BENCHMARK(BM_ScatteringSetup)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

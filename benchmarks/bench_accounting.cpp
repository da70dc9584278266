// Benchmark: PLD epsilon, delta and calibration on the golden cases, beside dp_accounting's recorded time.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <string>

#include "dpsgd/accounting/calibration.hpp"

namespace {

nlohmann::json load_cases(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::string path = argc > 1 ? argv[1] : DPSGD_SOURCE_DIR "/tests/data/accounting_golden.json";
  const nlohmann::json golden = load_cases(path);
  for (const auto& c : golden["epsilon"]) {
    const dpsgd::TrainingPhase phase{c["sampling_rate"], c["noise_multiplier"], c["steps"]};
    const double delta = c["delta"];
    const std::string name = "epsilon/q=" + c["sampling_rate"].dump() + "/sigma=" + c["noise_multiplier"].dump() +
                             "/T=" + c["steps"].dump() + "/delta=" + c["delta"].dump();
    const double reference_seconds = c["pld_seconds"];
    benchmark::RegisterBenchmark(name.c_str(),
                                 [phase, delta, reference_seconds](benchmark::State& state) {
                                   double eps = 0.0;
                                   for (auto _ : state)
                                     eps = dpsgd::compute_epsilon(std::span<const dpsgd::TrainingPhase>(&phase, 1),
                                                                  delta);
                                   state.counters["epsilon"] = eps;
                                   state.counters["dp_accounting_s"] = reference_seconds;
                                 })
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
  }
  for (const auto& c : golden["calibration"]) {
    const double q = c["sampling_rate"], eps = c["epsilon"], delta = c["delta"];
    const std::int64_t steps = c["steps"];
    const double reference_seconds = c["pld_seconds"];
    const std::string name =
        "calibrate/q=" + c["sampling_rate"].dump() + "/T=" + c["steps"].dump() + "/eps=" + c["epsilon"].dump();
    benchmark::RegisterBenchmark(name.c_str(),
                                 [=](benchmark::State& state) {
                                   double sigma = 0.0;
                                   for (auto _ : state) sigma = dpsgd::calibrate_noise_multiplier(q, steps, eps, delta);
                                   state.counters["sigma"] = sigma;
                                   state.counters["dp_accounting_s"] = reference_seconds;
                                 })
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// bench_training_step: times one training step (non-private or DP-SGD) of a named MLP and prints one JSON line.
//
// A process per configuration, so that its peak resident memory belongs to that configuration
// alone; benchmarks/compare_opacus.py runs it beside the same steps in PyTorch and Opacus.
#include <omp.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "dpsgd/nn/mlp.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"
#include "dpsgd/optim/dp_sgd.hpp"

namespace {

// The models of the performance issue (#7), by name.
const std::map<std::string, std::vector<std::int64_t>>& model_shapes() {
  static const std::map<std::string, std::vector<std::int64_t>> shapes = {
      {"logreg", {784, 10}},
      {"mlp", {784, 512, 256, 10}},
      {"mlp-wide", {3072, 1024, 1024, 10}},
  };
  return shapes;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time one training step of an MLP, non-private or DP-SGD (ghost clipping + noise)"};
  std::string model_name = "mlp";
  std::string mode = "dp";
  std::int64_t batch = 1024;
  int steps = 20;
  int warmup = 3;
  int threads = 0;
  app.add_option("--model", model_name, "logreg (784-10), mlp (784-512-256-10), mlp-wide (3072-1024-1024-10)")
      ->check(CLI::IsMember({"logreg", "mlp", "mlp-wide"}));
  app.add_option("--mode", mode, "nonprivate or dp")->check(CLI::IsMember({"nonprivate", "dp"}));
  app.add_option("--batch", batch, "examples per step")->check(CLI::Range(1, 1 << 20));
  app.add_option("--steps", steps, "timed steps (the median is reported)")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(0, 1000));
  app.add_option("--threads", threads, "OpenMP threads (0: the OpenMP default)")->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) omp_set_num_threads(threads);

  const std::vector<std::int64_t>& shape = model_shapes().at(model_name);
  dpsgd::nn::Mlp<float> model(shape, dpsgd::nn::ActivationKind::kRelu, 1);
  const bool dp = mode == "dp";
  // Inputs in [-1, 1] and labels cycling over the classes: the values do not change the work.
  const dpsgd::RowMajorMatrix<float> inputs = dpsgd::RowMajorMatrix<float>::Random(batch, shape.front());
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i)
    labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % shape.back());
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch), 1);

  dpsgd::DpSgdConfig config;
  config.noise_multiplier = dp ? 1.0 : 0.0;  // sigma = 0: the driver draws no noise
  config.sampling_rate = 0.01;
  config.expected_batch_size = static_cast<double>(batch);
  config.clip = dpsgd::ClipConfig::flat(1.0);
  dpsgd::DpSgd<float> driver(config, std::make_unique<dpsgd::Sgd<float>>(0.01), 7);
  std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()));

  std::vector<double> times_ms;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto start = std::chrono::steady_clock::now();
    const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model.forward(inputs), labels, mask);
    model.backward(loss.logit_grads);
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    if (dp) {
      model.clipped_gradient_sum(mask, config.clip, gradient);
    } else {
      model.gradient_sum(mask, gradient);
    }
    driver.step(model.parameters(), gradient);
    const auto stop = std::chrono::steady_clock::now();
    if (s >= warmup) times_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(times_ms.begin(), times_ms.end());
  const double median_ms = times_ms[times_ms.size() / 2];
  const nlohmann::json result = {
      {"library", "dpsgd"},
      {"model", model_name},
      {"mode", mode},
      {"batch", batch},
      {"threads", omp_get_max_threads()},
      {"parameters", model.num_parameters()},
      {"step_ms", median_ms},
      {"min_step_ms", times_ms.front()},
      {"samples_per_s", 1000.0 * static_cast<double>(batch) / median_ms},
      {"peak_rss_mib", peak_rss_mib()},
      {"noise_kernel", dpsgd::detail::standard_normal_blocks_use_avx512() ? "avx512" : "portable"},
  };
  std::cout << result.dump() << std::endl;
  return 0;
}

// bench_lm_step: times one training step of the decoder-only language model (non-private, DP, DP-BiTFiT,
// DP last layer) and prints one JSON line; a process per configuration, so peak memory is its own.
#include <omp.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "dpsgd/nn/decoder_lm.hpp"
#include "dpsgd/nn/token_cross_entropy.hpp"
#include "dpsgd/optim/dp_sgd.hpp"

namespace {

// The dp_lm example's model (small) and a wider, deeper one (medium).
dpsgd::nn::DecoderLMConfig model_config(const std::string& size, std::int64_t context) {
  if (size == "small")
    return {.vocab_size = 98, .context = context, .d_model = 64, .heads = 4, .layers = 2, .mlp_hidden = 256};
  return {.vocab_size = 98, .context = context, .d_model = 128, .heads = 4, .layers = 4, .mlp_hidden = 512};
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time one training step of the decoder-only transformer LM"};
  std::string size = "small", mode = "dp";
  std::int64_t batch = 64, context = 64;
  int steps = 10, warmup = 2, threads = 0;
  app.add_option("--size", size, "small (d 64, 2 layers) or medium (d 128, 4 layers)")
      ->check(CLI::IsMember({"small", "medium"}));
  app.add_option("--mode", mode, "nonprivate, dp (all parameters), dp-bitfit (biases only) or dp-last (head only)")
      ->check(CLI::IsMember({"nonprivate", "dp", "dp-bitfit", "dp-last"}));
  app.add_option("--batch", batch, "sequences per step")->check(CLI::Range(1, 1 << 20));
  app.add_option("--context", context, "positions per sequence (all real)")->check(CLI::Range(2, 4096));
  app.add_option("--steps", steps, "timed steps (the median is reported)")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(0, 1000));
  app.add_option("--threads", threads, "OpenMP threads (0: the OpenMP default)")->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) omp_set_num_threads(threads);

  dpsgd::nn::DecoderLM<float> model(model_config(size, context), 1);
  model.set_trainable(mode == "dp-bitfit" ? dpsgd::nn::Trainable::kBiasOnly
                      : mode == "dp-last" ? dpsgd::nn::Trainable::kLastLayer
                                          : dpsgd::nn::Trainable::kAll);
  const bool dp = mode != "nonprivate";
  std::mt19937 rng(3);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(batch * context)), targets(tokens.size());
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng() % 98);
  for (auto& t : targets) t = static_cast<std::int32_t>(rng() % 98);
  const std::vector<std::uint8_t> positions(tokens.size(), 1), slots(static_cast<std::size_t>(batch), 1);

  dpsgd::DpSgdConfig config;
  config.noise_multiplier = dp ? 1.0 : 0.0;  // sigma = 0: the driver draws no noise
  config.sampling_rate = 0.01;
  config.expected_batch_size = static_cast<double>(batch);
  config.clip = dpsgd::ClipConfig::flat(1.0);
  dpsgd::DpSgd<float> driver(config, std::make_unique<dpsgd::Adam<float>>(1e-3), 7);
  std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()));
  std::vector<std::span<float>> params, grads;
  for (const auto& r : model.trainable_ranges()) {
    params.push_back(model.parameters().subspan(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.size)));
    grads.push_back(
        std::span<float>(gradient).subspan(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.size)));
  }

  std::vector<double> times_ms;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto start = std::chrono::steady_clock::now();
    const auto logits = model.forward(tokens, positions, batch);
    model.backward(dpsgd::nn::token_cross_entropy<float>(logits, targets, positions, batch).logit_grads);
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    if (dp) {
      model.clipped_gradient_sum(slots, config.clip, gradient);
    } else {
      model.gradient_sum(slots, gradient);
    }
    driver.step(std::span<const std::span<float>>(params), std::span<const std::span<float>>(grads));
    const auto stop = std::chrono::steady_clock::now();
    if (s >= warmup) times_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(times_ms.begin(), times_ms.end());
  const double median_ms = times_ms[times_ms.size() / 2];
  const nlohmann::json result = {{"library", "dpsgd"},
                                 {"model", "decoder-lm-" + size},
                                 {"mode", mode},
                                 {"batch", batch},
                                 {"context", context},
                                 {"threads", omp_get_max_threads()},
                                 {"parameters", model.num_parameters()},
                                 {"trainable", model.num_trainable()},
                                 {"step_ms", median_ms},
                                 {"min_step_ms", times_ms.front()},
                                 {"tokens_per_s", 1000.0 * static_cast<double>(batch * context) / median_ms},
                                 {"peak_rss_mib", peak_rss_mib()}};
  std::cout << result.dump() << std::endl;
  return 0;
}

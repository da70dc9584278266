// Benchmark: one DP-SGD step (ghost clipping + noise) against the non-private step of the same model and batch.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "dpsgd/nn/mlp.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"
#include "dpsgd/nn/tanh_cnn.hpp"
#include "dpsgd/optim/dp_sgd.hpp"

namespace {

enum ModelKind { kCnn = 0, kMlp = 1 };

// Args: model, batch, private (1) or not (0). items/s = examples per second.
void BM_TrainingStep(benchmark::State& state) {
  const auto kind = static_cast<ModelKind>(state.range(0));
  const std::int64_t batch = state.range(1);
  const bool dp_step = state.range(2) != 0;
  std::unique_ptr<dpsgd::nn::Sequential<float>> model;
  if (kind == kCnn) {
    model = std::make_unique<dpsgd::nn::Sequential<float>>();
    dpsgd::nn::add_tanh_cnn(*model, dpsgd::nn::ImageShape{28, 28, 1}, 10, 1);
  } else {
    model = std::make_unique<dpsgd::nn::Mlp<float>>(std::vector<std::int64_t>{784, 512, 256, 10},
                                                    dpsgd::nn::ActivationKind::kRelu, 1);
  }
  const dpsgd::RowMajorMatrix<float> inputs = dpsgd::RowMajorMatrix<float>::Random(batch, 784);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 10);
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(batch), 1);
  dpsgd::DpSgdConfig config;
  config.noise_multiplier = dp_step ? 1.0 : 0.0;
  config.sampling_rate = 0.01;
  config.expected_batch_size = static_cast<double>(batch);
  config.clip = dpsgd::ClipConfig::flat(0.1);
  dpsgd::DpSgd<float> driver(config, std::make_unique<dpsgd::Momentum<float>>(0.01, 0.9), 7);
  std::vector<float> gradient(static_cast<std::size_t>(model->num_parameters()));
  for (auto _ : state) {
    const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model->forward(inputs), labels, mask);
    model->backward(loss.logit_grads);
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    if (dp_step) {
      model->clipped_gradient_sum(mask, config.clip, gradient);
    } else {
      model->gradient_sum(mask, gradient);
    }
    driver.step(model->parameters(), gradient);  // sigma = 0 for the non-private step: no noise drawn
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_TrainingStep)
    ->ArgNames({"model", "batch", "dp"})
    ->Args({kCnn, 1024, 0})
    ->Args({kCnn, 1024, 1})
    ->Args({kMlp, 1024, 0})
    ->Args({kMlp, 1024, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

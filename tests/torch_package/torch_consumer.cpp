// A user's LibTorch model trained with DP-SGD through dpsgd::torch: a two-layer classifier on two
// Gaussian clouds, Adam wrapped by the private optimiser, epsilon from the run's ledger.
#include <dpsgd/torch/linear.hpp>
#include <dpsgd/torch/private_optimizer.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

// The user's model: its trainable layers are dpsgd::torch's, everything else is plain LibTorch.
struct ClassifierImpl : torch::nn::Module {
  ClassifierImpl()
      : hidden(register_module("hidden", dpsgd::torch::Linear(2, 16))),
        out(register_module("out", dpsgd::torch::Linear(16, 2))) {}
  torch::Tensor forward(const torch::Tensor& x) { return out(torch::relu(hidden(x))); }
  dpsgd::torch::Linear hidden, out;
};
TORCH_MODULE(Classifier);

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: torch_consumer RUN_DIR\n");
    return 2;
  }
  std::filesystem::remove_all(argv[1]);
  torch::manual_seed(0);
  const std::int64_t n = 2000;
  const torch::Tensor labels = torch::randint(0, 2, {n}, torch::kInt64);
  const torch::Tensor x = torch::randn({n, 2}) + (labels.to(torch::kFloat32) * 4 - 2).unsqueeze(1);

  Classifier model;
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(0.05));
  dpsgd::TrainingRunConfig config;
  config.directory = argv[1];
  config.dataset_size = n;
  config.sampling_rate = 0.05;
  config.capacity = 160;
  config.noise_multiplier = 1.0;
  config.clip = dpsgd::ClipConfig::flat(1.0);
  config.steps = 60;
  dpsgd::torch::PrivateOptimizer optimizer(*model, adam, config);
  while (!optimizer.finished()) {
    const dpsgd::Batch batch = optimizer.next_batch();
    const torch::Tensor logits = model->forward(dpsgd::torch::gather_rows(x, batch));
    torch::nn::functional::cross_entropy(logits, dpsgd::torch::gather_rows(labels, batch),
                                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
        .backward();
    optimizer.step(batch);
  }
  optimizer.checkpoint();
  model->eval();
  const torch::NoGradGuard no_grad;
  const double accuracy = (model->forward(x).argmax(1) == labels).to(torch::kFloat64).mean().item<double>();
  const double epsilon = optimizer.epsilon(1e-5);
  std::printf("torch consumer: accuracy %.3f after %lld private steps, epsilon %.3f at delta 1e-5\n", accuracy,
              static_cast<long long>(optimizer.run().next_step()), epsilon);
  return accuracy > 0.9 && epsilon > 0.0 && epsilon < 10.0 ? 0 : 1;
}

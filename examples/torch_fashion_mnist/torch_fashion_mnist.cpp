// torch_fashion_mnist: the native example's tanh CNN written in LibTorch and trained with DP-SGD through
// dpsgd::torch (Poisson batches of fixed capacity, ghost clipping, calibrated noise, the PLD accountant,
// a run directory that a resumed run continues).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <string>

#include "command_line.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/data/idx.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/torch/conv2d.hpp"
#include "dpsgd/torch/linear.hpp"
#include "dpsgd/torch/private_optimizer.hpp"

namespace {

// Everything the command line sets; the defaults are the native example's (docs/fashion_mnist.md).
struct Options {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  double batch_size = 2048, learning_rate = 4.0, momentum = 0.9, clip_norm = 0.1;
  double epsilon = 3.0, delta = 1e-5, epochs = 28;
  std::int64_t train_subset = 0, test_subset = 0, checkpoint_every = 50;
  int threads = 0;
  std::string run_dir, metrics_out;
  std::optional<std::uint64_t> seed;
  bool resume = false;

  nlohmann::json settings() const {
    return {{"model", "torch-cnn"}, {"batch_size", batch_size},     {"learning_rate", learning_rate},
            {"momentum", momentum}, {"clip_norm", clip_norm},       {"epsilon", epsilon},
            {"delta", delta},       {"train_subset", train_subset}, {"data_dir", data_dir}};
  }
};

// Pixel statistics of the Fashion-MNIST training set (public constants of the data set).
constexpr float kPixelMean = 0.2860f, kPixelStd = 0.3530f;

// The tanh CNN of Papernot et al. 2021 that Tramer & Boneh 2021 train end to end: conv 8x8 stride 2
// padding 3 (16) - tanh - max pool 2 stride 1 - conv 4x4 stride 2 (32) - tanh - max pool 2 stride 1 -
// linear 32 - tanh - linear 10. Its trainable layers are dpsgd::torch's; the rest is plain LibTorch.
struct TanhCnnImpl : torch::nn::Module {
  TanhCnnImpl()
      : conv1(register_module("conv1", dpsgd::torch::Conv2d(torch::nn::Conv2dOptions(1, 16, 8).stride(2).padding(3)))),
        conv2(register_module("conv2", dpsgd::torch::Conv2d(torch::nn::Conv2dOptions(16, 32, 4).stride(2)))),
        fc1(register_module("fc1", dpsgd::torch::Linear(32 * 4 * 4, 32))),
        fc2(register_module("fc2", dpsgd::torch::Linear(32, 10))) {}

  torch::Tensor forward(const torch::Tensor& images) {
    namespace F = torch::nn::functional;
    const auto pool = F::MaxPool2dFuncOptions(2).stride(1);
    torch::Tensor x = F::max_pool2d(torch::tanh(conv1(images)), pool);
    x = F::max_pool2d(torch::tanh(conv2(x)), pool);
    return fc2(torch::tanh(fc1(x.flatten(1))));
  }

  dpsgd::torch::Conv2d conv1, conv2;
  dpsgd::torch::Linear fc1, fc2;
};
TORCH_MODULE(TanhCnn);

struct Images {
  torch::Tensor x;  // [N, 1, 28, 28], normalised
  torch::Tensor y;  // [N] int64
};

std::optional<int> parse_options(int argc, char** argv, Options& o) {
  CLI::App app{"DP-SGD on Fashion-MNIST with a LibTorch model through dpsgd::torch"};
  app.add_option("--data-dir", o.data_dir, "directory of the four IDX files (plain or .gz)");
  app.add_option("--epsilon", o.epsilon, "privacy budget (default 3)")->check(CLI::PositiveNumber);
  app.add_option("--delta", o.delta, "delta (default 1e-5)")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--epochs", o.epochs, "passes over the data")->check(CLI::Range(1e-3, 1e4));
  app.add_option("--batch-size", o.batch_size, "expected batch size q N")->check(CLI::Range(1.0, 1e6));
  app.add_option("--learning-rate", o.learning_rate, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", o.momentum, "heavy-ball momentum in [0, 1)")->check(CLI::Range(0.0, 0.999));
  app.add_option("--clip-norm", o.clip_norm, "per-example clip norm C")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "explicit seed: reproducible, NOT for a released model (default: OS CSPRNG)");
  app.add_option("--train-subset", o.train_subset, "use only the first N training examples (smoke tests)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--test-subset", o.test_subset, "evaluate on the first N test examples")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "LibTorch threads (default: LibTorch's choice)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--run-dir", o.run_dir, "the run's directory (default: a new one under runs/)");
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")->check(CLI::PositiveNumber);
  app.add_option("--metrics-out", o.metrics_out, "write final metrics as JSON");
  app.add_flag("--resume", o.resume, "continue the run in --run-dir (or start it there if it holds none)");
  return dpsgd_example::parse_training_command_line(app, argc, argv, o.resume, o.run_dir);
}

Images load(const std::string& dir, const std::string& stem, std::int64_t subset) {
  dpsgd::LabelledImages data = dpsgd::read_idx_images(dpsgd::find_idx_file(dir, stem + "-images-idx3-ubyte"),
                                                      dpsgd::find_idx_file(dir, stem + "-labels-idx1-ubyte"));
  if (data.height != 28 || data.width != 28) {
    throw dpsgd::FormatError(dir + "/" + stem + " images are " + std::to_string(data.height) + " x " +
                             std::to_string(data.width) + ", the model needs 28 x 28");
  }
  std::int64_t n = data.images.rows();
  if (subset > 0 && subset < n) n = subset;
  Images result;
  result.x =
      ((torch::from_blob(data.images.data(), {data.images.rows(), 1, 28, 28}, torch::kFloat32).slice(0, 0, n).clone() -
        kPixelMean) /
       kPixelStd);
  std::vector<std::int64_t> labels(data.labels.begin(), data.labels.begin() + n);
  result.y = torch::tensor(labels, torch::kInt64);
  return result;
}

// A new run calibrates sigma to the target epsilon with a capacity whose truncation charge is 1% of
// delta (the native example's rule); a resumed run keeps its own (dpsgd::plan_run).
dpsgd::TrainingRunConfig run_config(const Options& o, std::int64_t n) {
  if (o.batch_size > static_cast<double>(n)) throw dpsgd::InvalidArgument("--batch-size must be <= the data size");
  return dpsgd::plan_run({.directory = o.run_dir,
                          .resume = o.resume,
                          .dataset_size = n,
                          .expected_batch_size = o.batch_size,
                          .epochs = o.epochs,
                          .clip = dpsgd::ClipConfig::flat(o.clip_norm),
                          .epsilon = o.epsilon,
                          .delta = o.delta,
                          .noise_multiplier = std::nullopt,
                          .no_privacy = false,
                          .settings = o.settings(),
                          .seed = o.seed,
                          .release = std::nullopt});
}

double accuracy(TanhCnn& model, const Images& test) {
  const torch::NoGradGuard no_grad;
  model->eval();
  std::int64_t correct = 0;
  for (std::int64_t start = 0; start < test.x.size(0); start += 1000) {
    const std::int64_t end = std::min(start + 1000, test.x.size(0));
    correct += (model->forward(test.x.slice(0, start, end)).argmax(1) == test.y.slice(0, start, end))
                   .sum()
                   .item<std::int64_t>();
  }
  model->train();
  return static_cast<double>(correct) / static_cast<double>(test.x.size(0));
}

// One private step: the batch's forward and backward pass (loss summed over the slots), then the
// private optimiser (clip, charge, noise, SGD with momentum).
void private_step(TanhCnn& model, dpsgd::torch::PrivateOptimizer& optimizer, const Images& train) {
  namespace F = torch::nn::functional;
  const dpsgd::Batch batch = optimizer.next_batch();
  const torch::Tensor logits = model->forward(dpsgd::torch::gather_rows(train.x, batch));
  F::cross_entropy(logits, dpsgd::torch::gather_rows(train.y, batch),
                   F::CrossEntropyFuncOptions().reduction(torch::kSum))
      .backward();
  optimizer.step(batch);
}

// Trains to the end of the plan with a line per epoch (test accuracy and the PLD epsilon: nothing
// from private batches) and checkpoints; returns the final test accuracy.
double train(TanhCnn& model, dpsgd::torch::PrivateOptimizer& optimizer, const Options& o, const Images& train_set,
             const Images& test) {
  const dpsgd::TrainingRun& run = optimizer.run();
  const auto per_epoch = std::max<std::int64_t>(1, std::llround(1.0 / run.config().sampling_rate));
  const auto start = std::chrono::steady_clock::now();
  const auto first = static_cast<std::int64_t>(run.next_step());
  double last_accuracy = std::numeric_limits<double>::quiet_NaN();
  while (!optimizer.finished()) {
    private_step(model, optimizer, train_set);
    const auto done = static_cast<std::int64_t>(run.next_step());
    if (done % o.checkpoint_every == 0 || optimizer.finished()) optimizer.checkpoint();
    if (done % per_epoch != 0 && !optimizer.finished()) continue;
    last_accuracy = accuracy(model, test);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  epoch %6.2f  step %5lld/%lld  test accuracy %.4f  epsilon %.3f  %.2f s/step\n",
                static_cast<double>(done) * run.config().sampling_rate, static_cast<long long>(done),
                static_cast<long long>(run.planned_steps()), last_accuracy, optimizer.epsilon(o.delta),
                seconds / static_cast<double>(done - first));
    std::fflush(stdout);
  }
  return std::isnan(last_accuracy) ? accuracy(model, test) : last_accuracy;
}

int run_main(Options& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  if (o.run_dir.empty()) o.run_dir = dpsgd::TrainingRun::fresh_directory("runs", "torch_fashion_mnist");
  dpsgd::validate_output_file("--metrics-out", o.metrics_out);
  const auto start = std::chrono::steady_clock::now();
  const Images train_set = load(o.data_dir, "train", o.train_subset);
  const Images test = load(o.data_dir, "t10k", o.test_subset);
  const dpsgd::TrainingRunConfig config = run_config(o, train_set.x.size(0));
  TanhCnn model;
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum));
  dpsgd::torch::PrivateOptimizer optimizer(*model, sgd, config);
  std::printf("torch_fashion_mnist: N=%lld, q=%.5f, capacity %lld, %lld steps, sigma=%.4f, C=%g, %d threads\n",
              static_cast<long long>(config.dataset_size), config.sampling_rate,
              static_cast<long long>(config.capacity), static_cast<long long>(optimizer.run().planned_steps()),
              optimizer.run().config().noise_multiplier, o.clip_norm, torch::get_num_threads());
  std::printf("run directory: %s (continue it with --run-dir %s --resume)\n", optimizer.run().directory().c_str(),
              optimizer.run().directory().c_str());
  std::fflush(stdout);
  const double test_accuracy = train(model, optimizer, o, train_set, test);
  const double epsilon = optimizer.epsilon(o.delta);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("test accuracy: %.4f\n", test_accuracy);
  std::printf("epsilon: %.4f at delta = %g (PLD, add/remove adjacency, truncated Poisson sampling, %llu steps)\n",
              epsilon, o.delta, static_cast<unsigned long long>(optimizer.run().next_step()));
  std::printf("time: %.1f s\n", seconds);
  if (!o.metrics_out.empty()) {
    const nlohmann::json metrics = {
        {"test_accuracy", test_accuracy},       {"epsilon", epsilon}, {"delta", o.delta},
        {"steps", optimizer.run().next_step()}, {"seconds", seconds}, {"threads", torch::get_num_threads()}};
    dpsgd::write_file_atomically(o.metrics_out, metrics.dump(2) + "\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const auto status = parse_options(argc, argv, options)) return *status;
  try {
    return run_main(options);
  } catch (const dpsgd::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());  // the user's input or data: status 2
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

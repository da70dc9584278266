// dpsgd_synthetic: trains an MLP with DP-SGD (Poisson batches, ghost clipping, Gaussian noise) on a
// synthetic Gaussian-mixture task, on dpsgd::TrainingRun: the whole loop a user writes around the library.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <random>

#include "command_line.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/dpsgd.hpp"
#include "dpsgd/nn/mlp.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/gather_batch.hpp"
#include "run_outcome.hpp"

namespace {

struct Dataset {
  dpsgd::RowMajorMatrix<float> features;
  std::vector<std::int32_t> labels;
};

struct Options {
  std::int64_t train_size = 60000;
  int features = 64, classes = 10, hidden = 128, epochs = 5;
  double separation = 0.5, batch_size = 256, clip_norm = 1.0, learning_rate = 0.5, momentum = 0.9;
  double epsilon = 3.0, delta = 1e-5, min_accuracy = 0.0;
  std::optional<double> sigma;
  bool no_privacy = false, resume = false;
  std::optional<std::uint64_t> seed;
  std::uint64_t data_seed = 1;
  std::string metrics_out, run_dir;

  // What defines the run besides q, N, capacity and sigma: a resume with other values is refused.
  nlohmann::json settings() const {
    return {{"features", features},
            {"classes", classes},
            {"hidden", hidden},
            {"separation", separation},
            {"learning_rate", learning_rate},
            {"momentum", momentum},
            {"no_privacy", no_privacy},
            {"data_seed", data_seed},
            {"epsilon", epsilon},
            {"delta", delta}};
  }
};

std::optional<int> parse_options(int argc, char** argv, Options& o) {
  CLI::App app{"Train an MLP with DP-SGD on a synthetic Gaussian-mixture task (dpsgd example)"};
  app.add_option("--train-size", o.train_size, "training examples N")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{100'000'000}));
  app.add_option("--features", o.features, "input dimension")->check(CLI::Range(1, 100000));
  app.add_option("--classes", o.classes, "number of classes")->check(CLI::Range(2, 1000));
  app.add_option("--hidden", o.hidden, "hidden units")->check(CLI::Range(1, 100000));
  app.add_option("--separation", o.separation, "distance scale between class centres")->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs, "passes over the data (steps = epochs / q)")->check(CLI::Range(1, 100000));
  app.add_option("--batch-size", o.batch_size, "expected batch size q N")->check(CLI::PositiveNumber);
  app.add_option("--epsilon", o.epsilon, "privacy budget: sigma is calibrated so the run ends at this epsilon")
      ->check(CLI::PositiveNumber);
  app.add_option("--delta", o.delta, "delta of the (epsilon, delta) guarantee")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--noise-multiplier", o.sigma, "sigma: set it instead of calibrating it from --epsilon")
      ->check(CLI::PositiveNumber);
  app.add_option("--clip-norm", o.clip_norm, "per-example L2 clip norm C")->check(CLI::PositiveNumber);
  app.add_option("--learning-rate", o.learning_rate, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", o.momentum, "heavy-ball momentum in [0, 1)")->check(CLI::Range(0.0, 0.999));
  app.add_flag("--no-privacy", o.no_privacy, "train the same model without clipping or noise");
  app.add_option("--seed", o.seed, "explicit run seed: reproducible, NOT for a released model (default: OS CSPRNG)");
  app.add_option("--data-seed", o.data_seed, "seed of the synthetic data set (public)");
  app.add_option("--run-dir", o.run_dir, "the run's directory (default: a new one under runs/)");
  app.add_flag("--resume", o.resume, "continue the run in --run-dir (or start it there if it holds none)");
  app.add_option("--metrics-out", o.metrics_out, "write final metrics as JSON to this file");
  app.add_option("--min-accuracy", o.min_accuracy, "exit with status 1 if test accuracy ends below this")
      ->check(CLI::Range(0.0, 1.0));
  return dpsgd_example::parse_training_command_line(app, argc, argv, o.resume, o.run_dir);
}

// Classes are Gaussian blobs around random centres; `separation` sets how far apart they sit.
Dataset make_mixture(std::int64_t size, const Options& o, std::uint64_t seed,
                     const dpsgd::RowMajorMatrix<float>& centres) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  Dataset d{dpsgd::RowMajorMatrix<float>(size, o.features), std::vector<std::int32_t>(static_cast<std::size_t>(size))};
  for (std::int64_t i = 0; i < size; ++i) {
    const auto label = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(o.classes));
    d.labels[static_cast<std::size_t>(i)] = label;
    for (int j = 0; j < o.features; ++j) {
      d.features(i, j) = static_cast<float>(o.separation) * centres(label, j) + normal(rng);
    }
  }
  return d;
}

std::pair<Dataset, Dataset> make_data(const Options& o) {
  std::mt19937_64 centre_rng(o.data_seed ^ 0x5eedULL);
  std::normal_distribution<float> normal;
  dpsgd::RowMajorMatrix<float> centres(o.classes, o.features);
  for (Eigen::Index i = 0; i < centres.size(); ++i) centres.data()[i] = normal(centre_rng);
  return {make_mixture(o.train_size, o, o.data_seed + 1, centres), make_mixture(10000, o, o.data_seed + 2, centres)};
}

// The run: a new one calibrates sigma to the target epsilon with the library's capacity rule, a
// resumed one keeps its own sigma and capacity (dpsgd::plan_run).
dpsgd::TrainingRunConfig run_config(const Options& o) {
  if (o.batch_size > static_cast<double>(o.train_size))
    throw dpsgd::InvalidArgument("--batch-size must be <= --train-size");
  return dpsgd::plan_run({.directory = o.run_dir,
                          .resume = o.resume,
                          .dataset_size = o.train_size,
                          .expected_batch_size = o.batch_size,
                          .epochs = static_cast<double>(o.epochs),
                          .clip = dpsgd::ClipConfig::flat(o.clip_norm),
                          .epsilon = o.epsilon,
                          .delta = o.delta,
                          .noise_multiplier = o.sigma,
                          .no_privacy = o.no_privacy,
                          .settings = o.settings(),
                          .seed = o.seed,
                          .release = std::nullopt});
}

double accuracy(dpsgd::nn::Mlp<float>& model, const Dataset& data) {
  const std::vector<std::int32_t> predicted = model.predict(data.features);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == data.labels[i];
  return static_cast<double>(correct) / static_cast<double>(predicted.size());
}

// Mean loss on held-out data: unlike the loss of the private batches, it releases nothing.
double heldout_loss(dpsgd::nn::Mlp<float>& model, const Dataset& test) {
  const std::vector<std::uint8_t> mask(test.labels.size(), 1);
  const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model.forward(test.features), test.labels, mask);
  return loss.total_loss / static_cast<double>(std::max<std::int64_t>(1, loss.num_examples));
}

double epsilon_of(const dpsgd::TrainingRun& run, const Options& o, dpsgd::AccountantKind kind) {
  if (o.no_privacy) return INFINITY;
  dpsgd::AccountantOptions options;
  options.kind = kind;
  return run.epsilon(o.delta, options);
}

// The private loop. Progress shows only public or held-out figures (no loss of private batches, no
// realised batch sizes, no count of clipped examples: all of them are private statistics).
void train(dpsgd::TrainingRun& run, dpsgd::nn::Mlp<float>& model, const Dataset& data, const Dataset& test,
           const Options& o) {
  const std::int64_t capacity = run.config().capacity;
  std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()));
  dpsgd::RowMajorMatrix<float> inputs(capacity, o.features);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(capacity));
  const std::int64_t report_every = std::max<std::int64_t>(1, run.planned_steps() / (5 * o.epochs));
  const auto first = static_cast<std::int64_t>(run.next_step());
  const auto start = std::chrono::steady_clock::now();
  while (!run.finished()) {
    const dpsgd::Batch batch = run.next_batch();
    dpsgd::gather_batch<float>(batch, data.features, data.labels, inputs, labels);
    const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model.forward(inputs), labels, batch.mask);
    model.backward(loss.logit_grads);
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    if (o.no_privacy) {
      model.gradient_sum(batch.mask, gradient);
    } else {
      model.clipped_gradient_sum(batch.mask, run.config().clip, gradient);
    }
    run.step(model.parameters(), gradient, batch);
    const auto done = static_cast<std::int64_t>(run.next_step());
    if (done % report_every == 0 || run.finished()) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = static_cast<double>(done - first) / seconds;
      std::printf("  epoch %5.2f  step %6lld/%lld  held-out loss %.4f  epsilon %6.3f  %7.1f steps/s  %5.1fs left\n",
                  static_cast<double>(done) * run.config().sampling_rate, static_cast<long long>(done),
                  static_cast<long long>(run.planned_steps()), heldout_loss(model, test),
                  epsilon_of(run, o, dpsgd::AccountantKind::kPld), rate,
                  static_cast<double>(run.planned_steps() - done) / rate);
      std::fflush(stdout);
    }
  }
  run.checkpoint(model.parameters());
}

int run_main(const Options& o) {
  dpsgd::validate_output_file("--metrics-out", o.metrics_out);
  const auto start = std::chrono::steady_clock::now();
  const auto [data, test] = make_data(o);
  dpsgd::TrainingRun run(run_config(o), std::make_unique<dpsgd::Momentum<float>>(o.learning_rate, o.momentum));
  dpsgd::nn::Mlp<float> model({o.features, o.hidden, o.classes}, dpsgd::nn::ActivationKind::kTanh,
                              run.initialisation_seed());
  if (!run.restored_parameters().empty()) {
    if (static_cast<std::int64_t>(run.restored_parameters().size()) != model.num_parameters())
      throw dpsgd::FormatError("checkpoint refused: its parameter count differs from the model's");
    std::copy(run.restored_parameters().begin(), run.restored_parameters().end(), model.parameters().begin());
  }
  const dpsgd::DpSgdConfig& c = run.config();
  std::printf("dpsgd_synthetic: N=%lld q=%.5f capacity=%lld steps=%lld sigma=%.3f C=%.3f%s; run directory %s\n",
              static_cast<long long>(c.dataset_size), c.sampling_rate, static_cast<long long>(c.capacity),
              static_cast<long long>(run.planned_steps()), c.noise_multiplier, o.clip_norm,
              o.no_privacy ? " (no privacy)" : "", run.directory().c_str());
  for (const std::string& note : run.notes()) std::printf("note: %s\n", note.c_str());
  if (o.seed) std::cerr << "note: explicit --seed makes this run reproducible; do not release its model as private\n";

  train(run, model, data, test, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double test_accuracy = accuracy(model, test);
  const double epsilon = epsilon_of(run, o, dpsgd::AccountantKind::kPld);
  std::printf("test accuracy: %.4f\n", test_accuracy);
  std::printf("epsilon: %.4f at delta = %g (PLD accountant, add/remove adjacency, truncated Poisson sampling)\n",
              epsilon, o.delta);
  std::printf("privacy: sigma=%.4f, q=%.6f, steps=%llu, capacity %lld%s\n", c.noise_multiplier, c.sampling_rate,
              static_cast<unsigned long long>(run.next_step()), static_cast<long long>(c.capacity),
              o.no_privacy ? " (no privacy: epsilon is infinite)" : "");
  if (!o.metrics_out.empty()) {
    const nlohmann::json metrics = {
        {"test_accuracy", test_accuracy},
        {"epsilon", std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr)},
        {"delta", o.delta},
        {"noise_multiplier", c.noise_multiplier},
        {"sampling_rate", c.sampling_rate},
        {"steps", run.next_step()},
        {"capacity", c.capacity},
        {"seconds", seconds},
        {"run_dir", run.directory()}};
    dpsgd::write_file_atomically(o.metrics_out, metrics.dump(2) + "\n");
  }
  if (test_accuracy < o.min_accuracy) {
    std::fprintf(stderr, "test accuracy %.4f is below --min-accuracy %.4f\n", test_accuracy, o.min_accuracy);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const auto status = parse_options(argc, argv, options)) return *status;
  if (options.run_dir.empty()) options.run_dir = dpsgd::TrainingRun::fresh_directory("runs", "synthetic");
  return dpsgd_example::run_reporting_errors([&] { return run_main(options); });
}

// dpsgd_synthetic: trains an MLP with DP-SGD (Poisson batches, ghost clipping, Gaussian noise) on a
// synthetic Gaussian-mixture task, showing the whole step loop a user writes around the library.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <random>

#include "dpsgd/accounting/accountant.hpp"
#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/dpsgd.hpp"
#include "dpsgd/nn/mlp.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"
#include "dpsgd/sampling/gather_batch.hpp"

namespace {

struct Dataset {
  dpsgd::RowMajorMatrix<float> features;
  std::vector<std::int32_t> labels;
};

// Classes are Gaussian blobs around random centres; `separation` sets how far apart they sit.
Dataset make_mixture(std::int64_t size, int features, int classes, double separation, std::uint64_t seed,
                     const dpsgd::RowMajorMatrix<float>& centres) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  Dataset d{dpsgd::RowMajorMatrix<float>(size, features), std::vector<std::int32_t>(static_cast<std::size_t>(size))};
  for (std::int64_t i = 0; i < size; ++i) {
    const auto label = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(classes));
    d.labels[static_cast<std::size_t>(i)] = label;
    for (int j = 0; j < features; ++j) {
      d.features(i, j) = static_cast<float>(separation) * centres(label, j) + normal(rng);
    }
  }
  return d;
}

double accuracy(dpsgd::nn::Mlp<float>& model, const Dataset& data) {
  const std::vector<std::int32_t> predicted = model.predict(data.features);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == data.labels[i];
  return static_cast<double>(correct) / static_cast<double>(predicted.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train an MLP with DP-SGD on a synthetic Gaussian-mixture task (dpsgd example)"};
  std::int64_t train_size = 60000;
  int features = 64, classes = 10, hidden = 128, epochs = 5;
  double separation = 0.5, batch_size = 256, clip_norm = 1.0, learning_rate = 0.5;
  double target_epsilon = 3.0, delta = 1e-5;
  std::optional<double> noise_multiplier;
  double momentum = 0.9, min_accuracy = 0.0;
  bool no_privacy = false;
  std::optional<std::uint64_t> seed;
  std::string metrics_out;
  app.add_option("--train-size", train_size, "training examples N")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{100'000'000}));
  app.add_option("--features", features, "input dimension")->check(CLI::Range(1, 100000));
  app.add_option("--classes", classes, "number of classes")->check(CLI::Range(2, 1000));
  app.add_option("--hidden", hidden, "hidden units")->check(CLI::Range(1, 100000));
  app.add_option("--separation", separation, "distance scale between class centres")->check(CLI::PositiveNumber);
  app.add_option("--epochs", epochs, "passes over the data (steps = epochs / q)")->check(CLI::Range(1, 100000));
  app.add_option("--batch-size", batch_size, "expected batch size q N")->check(CLI::PositiveNumber);
  app.add_option("--epsilon", target_epsilon, "privacy budget: sigma is calibrated so the run ends at this epsilon")
      ->check(CLI::PositiveNumber);
  app.add_option("--delta", delta, "delta of the (epsilon, delta) guarantee")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--noise-multiplier", noise_multiplier, "sigma: set it instead of calibrating it from --epsilon")
      ->check(CLI::PositiveNumber);
  app.add_option("--clip-norm", clip_norm, "per-example L2 clip norm C")->check(CLI::PositiveNumber);
  app.add_option("--learning-rate", learning_rate, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", momentum, "heavy-ball momentum in [0, 1)")->check(CLI::Range(0.0, 0.999));
  app.add_flag("--no-privacy", no_privacy, "train the same model without clipping or noise");
  app.add_option("--seed", seed, "explicit seed: reproducible, NOT for a released model (default: OS CSPRNG)");
  app.add_option("--metrics-out", metrics_out, "write final metrics as JSON to this file");
  app.add_option("--min-accuracy", min_accuracy, "exit with status 1 if test accuracy ends below this")
      ->check(CLI::Range(0.0, 1.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (batch_size > static_cast<double>(train_size))
      throw dpsgd::InvalidArgument("--batch-size must be <= --train-size");
    const std::uint64_t run_seed = seed ? *seed : dpsgd::secure_random_seed();
    if (seed) std::cerr << "note: explicit --seed makes this run reproducible; do not release its model as private\n";

    std::mt19937_64 centre_rng(run_seed ^ 0x5eedULL);
    std::normal_distribution<float> normal;
    dpsgd::RowMajorMatrix<float> centres(classes, features);
    for (Eigen::Index i = 0; i < centres.size(); ++i) centres.data()[i] = normal(centre_rng);
    const Dataset train = make_mixture(train_size, features, classes, separation, run_seed + 1, centres);
    const Dataset test = make_mixture(10000, features, classes, separation, run_seed + 2, centres);

    const double q = batch_size / static_cast<double>(train_size);
    const std::int64_t steps = static_cast<std::int64_t>(std::ceil(epochs / q));
    // Capacity so that truncation costs at most 1% of delta: the charge is (1 + e^eps) T Pr[overflow].
    const double per_step_overflow = 0.01 * delta / ((1.0 + std::exp(target_epsilon)) * static_cast<double>(steps));
    const dpsgd::TruncationCapacity capacity =
        dpsgd::capacity_for_truncation_probability(train_size, q, std::min(per_step_overflow, 1e-3));
    const dpsgd::PoissonSampler sampler(train_size, q, capacity.capacity, run_seed + 3);

    double sigma = 0.0;
    if (!no_privacy) {
      sigma = noise_multiplier ? *noise_multiplier
                               : dpsgd::calibrate_noise_multiplier(q, steps, target_epsilon, delta, {}, train_size,
                                                                   capacity.capacity);
    }
    // q, the divisor q N and the truncation charge all come from the sampler.
    const dpsgd::DpSgdConfig config =
        dpsgd::DpSgdConfig::for_sampler(sampler, sigma, dpsgd::ClipConfig::flat(clip_norm));
    dpsgd::PrivacyLedger ledger;
    dpsgd::DpSgd<float> dp(config, std::make_unique<dpsgd::Momentum<float>>(learning_rate, momentum), run_seed + 4,
                           &ledger);
    // Progress lines use the RDP accountant (microseconds, an upper bound); the final figure uses PLD.
    dpsgd::AccountantOptions rdp_options;
    rdp_options.kind = dpsgd::AccountantKind::kRdp;
    const auto epsilon_so_far = [&](const dpsgd::AccountantOptions& options) {
      return no_privacy ? INFINITY : ledger.epsilon(delta, options);
    };

    dpsgd::nn::Mlp<float> model({features, hidden, classes}, dpsgd::nn::ActivationKind::kTanh, run_seed + 5);
    std::printf(
        "dpsgd_synthetic: N=%lld q=%.5f capacity=%lld (truncation prob %.2e/step) steps=%lld sigma=%.3f C=%.3f%s\n",
        static_cast<long long>(train_size), q, static_cast<long long>(capacity.capacity),
        capacity.truncation_probability, static_cast<long long>(steps), config.noise_multiplier, clip_norm,
        no_privacy ? " (no privacy)" : "");

    std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()));
    dpsgd::RowMajorMatrix<float> inputs(capacity.capacity, features);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(capacity.capacity));
    const auto start = std::chrono::steady_clock::now();
    auto window_start = start;
    double loss_sum = 0.0;
    std::int64_t loss_count = 0, clipped = 0, seen = 0, dropped = 0;
    const std::int64_t report_every = std::max<std::int64_t>(1, steps / (5 * epochs));
    for (std::int64_t step = 0; step < steps; ++step) {
      const dpsgd::Batch batch = sampler.sample(dp.next_step());
      dpsgd::gather_batch<float>(batch, train.features, train.labels, inputs, labels);
      const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model.forward(inputs), labels, batch.mask);
      model.backward(loss.logit_grads);
      std::fill(gradient.begin(), gradient.end(), 0.0f);
      if (no_privacy) {
        model.gradient_sum(batch.mask, gradient);
      } else {
        const dpsgd::ClipFactors factors = model.clipped_gradient_sum(batch.mask, config.clip, gradient);
        clipped += factors.stats.num_clipped;
        dropped += factors.stats.num_nonfinite;
      }
      dp.step(model.parameters(), gradient, batch);
      loss_sum += loss.total_loss;
      loss_count += loss.num_examples;
      seen += batch.real_size;
      if ((step + 1) % report_every == 0 || step + 1 == steps) {
        const auto now = std::chrono::steady_clock::now();
        const double seconds = std::chrono::duration<double>(now - start).count();
        const double window = std::chrono::duration<double>(now - window_start).count();
        window_start = now;
        const double left = seconds / static_cast<double>(step + 1) * static_cast<double>(steps - step - 1);
        std::printf(
            "  epoch %5.2f  step %6lld/%lld  loss %.4f  clipped %5.1f%%  eps(rdp) %6.3f  %8.0f examples/s  %5.1fs "
            "left\n",
            static_cast<double>(step + 1) * q, static_cast<long long>(step + 1), static_cast<long long>(steps),
            loss_count ? loss_sum / static_cast<double>(loss_count) : 0.0,
            seen ? 100.0 * static_cast<double>(clipped) / static_cast<double>(seen) : 0.0, epsilon_so_far(rdp_options),
            static_cast<double>(seen) / window, left);
        std::fflush(stdout);
        loss_sum = 0.0;
        loss_count = clipped = seen = 0;
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double test_accuracy = accuracy(model, test);
    const double epsilon = epsilon_so_far({});
    std::printf("test accuracy: %.4f\n", test_accuracy);
    std::printf("epsilon: %.4f at delta = %g (PLD accountant, add/remove adjacency, truncated Poisson sampling)\n",
                epsilon, delta);
    std::printf("privacy: sigma=%.4f, q=%.6f, steps=%lld, capacity %lld%s\n", config.noise_multiplier, q,
                static_cast<long long>(steps), static_cast<long long>(capacity.capacity),
                no_privacy ? " (no privacy: epsilon is infinite)" : "");
    if (dropped > 0) std::printf("dropped %lld examples with non-finite gradients\n", static_cast<long long>(dropped));
    if (!metrics_out.empty()) {
      const nlohmann::json metrics = {
          {"test_accuracy", test_accuracy},
          {"epsilon", std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr)},
          {"delta", delta},
          {"noise_multiplier", config.noise_multiplier},
          {"sampling_rate", q},
          {"steps", steps},
          {"capacity", capacity.capacity},
          {"seconds", seconds}};
      dpsgd::write_file_atomically(metrics_out, metrics.dump(2) + "\n");
    }
    if (test_accuracy < min_accuracy) {
      std::fprintf(stderr, "test accuracy %.4f is below --min-accuracy %.4f\n", test_accuracy, min_accuracy);
      return 1;
    }
  } catch (const dpsgd::InvalidArgument& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

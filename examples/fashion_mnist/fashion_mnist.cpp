// fashion_mnist: DP-SGD on Fashion-MNIST from the command line, with the library's public API only:
// Poisson batches of fixed capacity, ghost clipping, calibrated noise, the PLD accountant, progress,
// metrics, an SVG plot, and atomic checkpoints that a resumed run continues from.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "dpsgd/accounting/accountant.hpp"
#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/data/idx.hpp"
#include "dpsgd/dpsgd.hpp"
#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/pooling.hpp"
#include "dpsgd/nn/sequential.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"
#include "dpsgd/nn/tanh_cnn.hpp"
#include "dpsgd/optim/checkpoint.hpp"
#include "dpsgd/sampling/gather_batch.hpp"
#include "svg_plot.hpp"

namespace {

using dpsgd::RowMajorMatrix;
using Model = dpsgd::nn::Sequential<float>;

// Everything that defines a run: a checkpoint only resumes a run with equal settings.
struct Settings {
  std::string model = "cnn";
  double epochs = 28, batch_size = 2048, learning_rate = 4.0, momentum = 0.9, clip_norm = 0.1;
  double epsilon = 3.0, delta = 1e-5;
  bool no_privacy = false;
  std::int64_t train_subset = 0, test_subset = 0;

  nlohmann::json to_json() const {
    return {{"model", model},
            {"epochs", epochs},
            {"batch_size", batch_size},
            {"learning_rate", learning_rate},
            {"momentum", momentum},
            {"clip_norm", clip_norm},
            {"epsilon", epsilon},
            {"delta", delta},
            {"no_privacy", no_privacy},
            {"train_subset", train_subset},
            {"test_subset", test_subset}};
  }
};

void build_mlp(Model& model, std::uint64_t seed) {
  using namespace dpsgd::nn;
  model.add<Linear<float>>(784, 256, true);
  model.add<Activation<float>>(ActivationKind::kTanh);
  model.add<Linear<float>>(256, 10, true);
  model.finalize(seed);
}

// Pixel statistics of the Fashion-MNIST training set (public constants of the data set).
constexpr float kPixelMean = 0.2860f, kPixelStd = 0.3530f;

dpsgd::LabelledImages load(const std::string& dir, const std::string& stem, std::int64_t subset) {
  dpsgd::LabelledImages data = dpsgd::read_idx_images(dpsgd::find_idx_file(dir, stem + "-images-idx3-ubyte"),
                                                      dpsgd::find_idx_file(dir, stem + "-labels-idx1-ubyte"));
  // The models take 28 x 28 images: another shape with the same pixel count would train on garbage.
  if (data.height != 28 || data.width != 28) {
    throw dpsgd::FormatError(dir + "/" + stem + " images are " + std::to_string(data.height) + " x " +
                             std::to_string(data.width) + ", the model needs 28 x 28");
  }
  if (subset > 0 && subset < data.images.rows()) {
    data.images.conservativeResize(subset, Eigen::NoChange);
    data.labels.resize(static_cast<std::size_t>(subset));
  }
  data.images.array() = (data.images.array() - kPixelMean) / kPixelStd;
  return data;
}

// Why `path` cannot be written as an output file, or "" if it can (or is empty: not requested).
std::string output_problem(const std::string& path) {
  if (path.empty()) return "";
  const std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) return "is a directory";
  const std::filesystem::path parent = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(parent)) return "its directory " + parent.string() + " does not exist";
  if (::access(parent.c_str(), W_OK) != 0) return "its directory " + parent.string() + " is not writable";
  return "";
}

double accuracy(Model& model, const dpsgd::LabelledImages& data) {
  std::int64_t correct = 0;
  const std::int64_t n = data.images.rows();
  for (std::int64_t begin = 0; begin < n; begin += 1000) {
    const std::int64_t size = std::min<std::int64_t>(1000, n - begin);
    const std::vector<std::int32_t> predicted = model.predict(data.images.middleRows(begin, size));
    for (std::int64_t i = 0; i < size; ++i) correct += predicted[i] == data.labels[static_cast<std::size_t>(begin + i)];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

// Mean cross-entropy over the first `count` test images. Held-out data: printing it releases nothing
// about the training set, unlike the mean loss over private Poisson batches.
double heldout_loss(Model& model, const dpsgd::LabelledImages& data, std::int64_t count) {
  const std::int64_t n = std::min<std::int64_t>(count, data.images.rows());
  const std::vector<std::int32_t> labels(data.labels.begin(), data.labels.begin() + n);
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(n), 1);
  const RowMajorMatrix<float> logits = model.forward(data.images.topRows(n));
  const auto loss = dpsgd::nn::softmax_cross_entropy<float>(logits, labels, mask);
  return loss.total_loss / static_cast<double>(std::max<std::int64_t>(1, loss.num_examples));
}

// The run's seed from its owner-only file, created from `fresh` if absent. An explicit --seed that
// differs from the file's is refused: a resumed run keeps its seed.
std::uint64_t run_secret_seed(const std::string& path, std::uint64_t fresh, bool explicit_seed) {
  if (!std::filesystem::exists(path)) {
    dpsgd::create_seed_file(path, fresh);
    return fresh;
  }
  const std::uint64_t stored = dpsgd::read_seed_file(path);
  if (explicit_seed && stored != fresh)
    throw dpsgd::InvalidArgument("--seed " + std::to_string(fresh) + " differs from the seed of the run being resumed");
  return stored;
}

// Everything the run made public, with its privacy cost: the parameters (every checkpoint and the
// final model) are covered by the ledger's epsilon; the evaluation figures use test data only.
void report_releases(const dpsgd::PrivacyLedger& ledger, double delta, const std::string& checkpoint_path) {
  std::printf("releases:\n");
  std::printf("  model parameters after %lld charged steps: epsilon %.4f at delta %g (the ledger's total)\n",
              static_cast<long long>(ledger.steps()), ledger.epsilon(delta), delta);
  if (!checkpoint_path.empty()) {
    std::printf("  checkpoints %s: parameters after fewer steps, within the same total\n", checkpoint_path.c_str());
    std::printf("  ledger %s.ledger.json: the steps charged (public)\n", checkpoint_path.c_str());
    std::printf("  not released: the seed in %s.seed (secret, owner-only)\n", checkpoint_path.c_str());
  }
  std::printf("  test accuracy and held-out loss: test data only, no privacy cost\n");
  std::printf("  nothing computed from private batches (their loss, their realised sizes) was printed or saved\n");
}

struct EvalPoint {
  std::int64_t step;
  double accuracy, epsilon;
};

[[noreturn]] void bad_checkpoint(const std::string& path, const std::string& what) {
  throw dpsgd::FormatError("checkpoint " + path + " refused: " + what);
}

constexpr const char* kCheckpointFormat = "dpsgd.fashion_mnist";

// Evaluation history in a checkpoint: [[step, accuracy, epsilon or null], ...] (JSON has no inf).
nlohmann::json history_to_json(const std::vector<EvalPoint>& history) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& e : history) {
    rows.push_back({e.step, e.accuracy, std::isfinite(e.epsilon) ? nlohmann::json(e.epsilon) : nlohmann::json()});
  }
  return {{"history", rows}};
}

std::vector<EvalPoint> history_from_json(const nlohmann::json& extra, const std::string& path) {
  std::vector<EvalPoint> history;
  const auto rows = extra.find("history");
  if (rows == extra.end() || !rows->is_array()) bad_checkpoint(path, "it has no evaluation history");
  for (const auto& e : *rows) {
    if (!e.is_array() || e.size() != 3 || !e[0].is_number_integer() || !e[1].is_number() ||
        !(e[2].is_number() || e[2].is_null()))
      bad_checkpoint(path, "an evaluation history entry is malformed: " + e.dump());
    history.push_back({e[0].get<std::int64_t>(), e[1].get<double>(),
                       e[2].is_null() ? std::numeric_limits<double>::infinity() : e[2].get<double>()});
  }
  return history;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a model on Fashion-MNIST with DP-SGD (dpsgd's main example)"};
  Settings s;
  std::string data_dir = "/usr/share/datasets/fashion-mnist", metrics_out, plot_path, checkpoint_path;
  std::optional<std::uint64_t> seed;
  std::optional<double> sigma_flag;
  std::int64_t checkpoint_every = 50;
  bool resume = false;
  app.add_option("--data-dir", data_dir, "directory of the four IDX files (plain or .gz)");
  app.add_option("--model", s.model, "cnn (tanh CNN, default) or mlp")->check(CLI::IsMember({"cnn", "mlp"}));
  app.add_option("--epsilon", s.epsilon, "privacy budget (default 3)")->check(CLI::PositiveNumber);
  app.add_option("--delta", s.delta, "delta (default 1e-5)")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--noise-multiplier", sigma_flag, "use this sigma and report its epsilon instead of calibrating")
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", s.epochs, "passes over the data")->check(CLI::Range(0.001, 10000.0));
  app.add_option("--batch-size", s.batch_size, "expected batch size q N")->check(CLI::Range(1.0, 1e6));
  app.add_option("--learning-rate", s.learning_rate, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", s.momentum, "heavy-ball momentum in [0, 1)")->check(CLI::Range(0.0, 0.999));
  app.add_option("--clip-norm", s.clip_norm, "per-example clip norm C")->check(CLI::PositiveNumber);
  app.add_flag("--no-privacy", s.no_privacy, "train the same model without clipping or noise");
  app.add_option("--seed", seed, "explicit seed: reproducible, NOT for a released model (default: OS CSPRNG)");
  app.add_option("--train-subset", s.train_subset, "use only the first N training examples (smoke tests)")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{60000}));
  app.add_option("--test-subset", s.test_subset, "evaluate on the first N test examples")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{10000}));
  app.add_option("--metrics-out", metrics_out, "write final metrics as JSON");
  app.add_option("--plot", plot_path, "write test accuracy and epsilon against steps as an SVG file");
  app.add_option("--checkpoint", checkpoint_path, "save model, optimiser, step and ledger here (atomically)");
  app.add_option("--checkpoint-every", checkpoint_every, "steps between checkpoints")->check(CLI::PositiveNumber);
  app.add_flag("--resume", resume, "continue from --checkpoint if it exists");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  if (resume && checkpoint_path.empty()) {
    std::cerr << "error: --resume needs --checkpoint\n";
    return 2;
  }
  // Outputs are checked before any work: an unwritable path must not cost a whole training run.
  for (const auto& [flag, file] : {std::pair<std::string, std::string>{"--metrics-out", metrics_out},
                                   {"--plot", plot_path},
                                   {"--checkpoint", checkpoint_path}}) {
    if (const std::string problem = output_problem(file); !problem.empty()) {
      std::cerr << "error: " << flag << " " << file << ": " << problem << "\n";
      return 2;
    }
  }
  if (!resume && !checkpoint_path.empty()) {
    // Another run's state is never replaced: its ledger holds privacy already spent.
    for (const std::string& file : {checkpoint_path, checkpoint_path + ".ledger.json", checkpoint_path + ".seed"}) {
      if (std::filesystem::exists(file)) {
        std::cerr << "error: " << file << " exists: pass --resume to continue that run, or choose another "
                  << "--checkpoint (nothing was changed)\n";
        return 1;
      }
    }
  }

  try {
    const auto start = std::chrono::steady_clock::now();
    const dpsgd::LabelledImages train = load(data_dir, "train", s.train_subset);
    const dpsgd::LabelledImages test = load(data_dir, "t10k", s.test_subset);
    const std::int64_t n = train.images.rows();
    if (s.batch_size > static_cast<double>(n))
      throw dpsgd::InvalidArgument("--batch-size must be <= the training set size");

    // The run's seed decides every batch and every noise vector: it is a secret, kept in its own
    // owner-only file beside the checkpoint, never inside a file that holds parameters.
    std::uint64_t run_seed = seed ? *seed : dpsgd::secure_random_seed();
    if (!checkpoint_path.empty()) run_seed = run_secret_seed(checkpoint_path + ".seed", run_seed, seed.has_value());
    if (seed)
      std::fprintf(stderr, "note: explicit --seed makes this run reproducible; do not release its model as private\n");

    const double q = s.batch_size / static_cast<double>(n);
    const auto steps = static_cast<std::int64_t>(std::ceil(s.epochs / q));
    // Capacity so that truncation costs at most 1% of delta: the charge is (1 + e^eps) T Pr[overflow].
    const double overflow = 0.01 * s.delta / ((1.0 + std::exp(s.epsilon)) * static_cast<double>(steps));
    const std::int64_t capacity =
        std::min(n, dpsgd::capacity_for_truncation_probability(n, q, std::min(overflow, 1e-3)).capacity);
    const bool truncated = capacity < n;
    double sigma = 0.0;
    if (!s.no_privacy) {
      sigma = sigma_flag ? *sigma_flag
                         : dpsgd::calibrate_noise_multiplier(q, steps, s.epsilon, s.delta, {}, truncated ? n : 0,
                                                             truncated ? capacity : 0);
    }

    // Everything that defines the mechanism: a resume with any of it changed is refused.
    nlohmann::json run_settings = s.to_json();
    run_settings["noise_multiplier"] = sigma;
    run_settings["capacity"] = capacity;
    run_settings["data_dir"] = data_dir;

    // Resume: the checkpoint fixes the model, the optimiser and the step; the ledger file
    // (written before every update) fixes which step indices are already charged.
    dpsgd::TrainingCheckpoint checkpoint;
    const std::string ledger_path = checkpoint_path.empty() ? "" : checkpoint_path + ".ledger.json";
    const bool resuming = resume && std::filesystem::exists(checkpoint_path);
    if (resuming) {
      checkpoint = dpsgd::load_checkpoint(checkpoint_path);  // checksum, types, ranges: FormatError if not
      if (checkpoint.format != kCheckpointFormat)
        bad_checkpoint(checkpoint_path, "it was written by " + checkpoint.format);
      if (checkpoint.settings != run_settings) {
        bad_checkpoint(checkpoint_path, "it was written with different settings: " + checkpoint.settings.dump());
      }
      std::printf("resuming from %s at step %llu\n", checkpoint_path.c_str(),
                  static_cast<unsigned long long>(checkpoint.next_step));
    }

    Model model;
    if (s.model == "cnn") {
      dpsgd::nn::add_tanh_cnn(model, dpsgd::nn::ImageShape{28, 28, 1}, 10, run_seed + 3);
    } else {
      build_mlp(model, run_seed + 3);
    }
    dpsgd::PoissonSampler sampler(n, q, capacity, run_seed + 2);
    // q, the divisor q N and the truncation charge all come from the sampler.
    const dpsgd::DpSgdConfig config =
        dpsgd::DpSgdConfig::for_sampler(sampler, sigma, dpsgd::ClipConfig::flat(s.clip_norm));
    // The ledger is saved before every update (write-ahead). On resume it may be ahead of the
    // checkpoint: the steps it holds beyond it were charged, so they stay charged.
    // An existing ledger file is always continued (locked, never replaced), with or without a
    // checkpoint: a run killed before its first checkpoint keeps its charged steps.
    dpsgd::PrivacyLedger ledger;
    if (!ledger_path.empty() && std::filesystem::exists(ledger_path)) {
      ledger = dpsgd::PrivacyLedger::open(ledger_path);
      // The checkpoint's steps were all charged; a ledger file behind it was not written by this run.
      if (resuming && !ledger.continues(checkpoint.ledger)) {
        bad_checkpoint(checkpoint_path,
                       "the ledger file " + ledger_path +
                           " does not continue the history the checkpoint saw (another run's ledger?)");
      }
      if (!resuming) {
        std::printf("no checkpoint at %s: the %lld steps charged in %s stay charged; training restarts at step %llu\n",
                    checkpoint_path.c_str(), static_cast<long long>(ledger.steps()), ledger_path.c_str(),
                    static_cast<unsigned long long>(ledger.next_step()));
      }
    } else {
      if (resuming) ledger = checkpoint.ledger;
      if (resume && !resuming) std::printf("no checkpoint at %s yet: starting a new run\n", checkpoint_path.c_str());
      if (!ledger_path.empty()) ledger.persist_to(ledger_path);  // created now: fails before any work
    }
    std::vector<EvalPoint> history;
    auto optimizer = std::make_unique<dpsgd::Momentum<float>>(s.learning_rate, s.momentum);
    dpsgd::DpSgd<float> dp(config, std::move(optimizer), run_seed + 1, &ledger);
    if (resuming) {
      if (static_cast<std::int64_t>(checkpoint.params.size()) != model.num_parameters())
        bad_checkpoint(checkpoint_path, "parameter count differs");
      std::copy(checkpoint.params.begin(), checkpoint.params.end(), model.parameters().begin());
      dp.optimizer().set_state(checkpoint.optimizer_state);
      history = history_from_json(checkpoint.extra, checkpoint_path);
      // Steps charged after the checkpoint were lost with the crash, but their noise may not be
      // reused: continue after the last charged step, and stop at the planned total.
      dp.resume_at(std::max<std::uint64_t>(checkpoint.next_step, ledger.next_step()));
    } else if (ledger.next_step() > 0) {
      dp.resume_at(ledger.next_step());  // charged steps of a run that left no checkpoint
    }
    std::printf("fashion_mnist: %s, %lld parameters, N=%lld, q=%.5f, capacity %lld, %lld steps, sigma=%.4f, C=%g%s\n",
                s.model.c_str(), static_cast<long long>(model.num_parameters()), static_cast<long long>(n), q,
                static_cast<long long>(capacity), static_cast<long long>(steps), sigma, s.clip_norm,
                s.no_privacy ? " (no privacy)" : "");
    std::fflush(stdout);

    const auto save_checkpoint = [&]() {
      if (checkpoint_path.empty()) return;
      dpsgd::TrainingCheckpoint state;
      state.format = kCheckpointFormat;
      state.settings = run_settings;
      state.seed = 0;  // the seed lives in its own file (see run_secret_seed)
      state.next_step = dp.next_step();
      state.params.assign(model.parameters().begin(), model.parameters().end());
      state.optimizer_state = dp.optimizer().state();
      state.ledger = ledger;
      state.extra = history_to_json(history);
      dpsgd::save_checkpoint(checkpoint_path, state);
    };
    const auto epsilon_now = [&](dpsgd::AccountantKind kind) {
      if (s.no_privacy) return std::numeric_limits<double>::infinity();
      dpsgd::AccountantOptions options;
      options.kind = kind;
      return ledger.epsilon(s.delta, options);
    };

    RowMajorMatrix<float> inputs(capacity, 784);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(capacity));
    std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()));
    const std::int64_t steps_per_epoch = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(1.0 / q)));
    const std::int64_t report_every = std::max<std::int64_t>(1, steps_per_epoch / 4);
    const std::int64_t first_step = static_cast<std::int64_t>(dp.next_step());
    const auto train_start = std::chrono::steady_clock::now();
    while (static_cast<std::int64_t>(dp.next_step()) < steps) {
      const std::int64_t step = static_cast<std::int64_t>(dp.next_step());
      const dpsgd::Batch batch = sampler.sample(dp.next_step());
      dpsgd::gather_batch<float>(batch, train.images, train.labels, inputs, labels);
      const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model.forward(inputs), labels, batch.mask);
      model.backward(loss.logit_grads);
      std::fill(gradient.begin(), gradient.end(), 0.0f);
      if (s.no_privacy) {
        model.gradient_sum(batch.mask, gradient);
      } else {
        model.clipped_gradient_sum(batch.mask, config.clip, gradient);
      }
      dp.step(model.parameters(), gradient, batch);
      // The parameters are released anyway, so checking them costs no privacy. A non-finite model
      // stops the run before it can overwrite the last good checkpoint.
      const auto params = model.parameters();
      if (dpsgd::detail::first_nonfinite<float>(params) != params.size()) {
        throw dpsgd::Error("the parameters became non-finite at step " + std::to_string(step) +
                           " (learning rate or clip norm too large?); the last checkpoint is kept");
      }
      const std::int64_t done = step + 1;
      if (done % report_every == 0 || done == steps) {
        const auto now = std::chrono::steady_clock::now();
        const double elapsed = std::chrono::duration<double>(now - train_start).count();
        const double left = elapsed / static_cast<double>(done - first_step) * static_cast<double>(steps - done);
        // Only public or held-out figures: steps per second (not realised batch sizes, which are
        // private) and the loss on held-out test images (not on the private batches).
        std::printf("  epoch %6.2f  step %6lld/%lld  held-out loss %.4f  %6.1f steps/s  eps(rdp) %6.3f  %5.0fs left\n",
                    static_cast<double>(done) * q, static_cast<long long>(done), static_cast<long long>(steps),
                    heldout_loss(model, test, 1000), static_cast<double>(done - first_step) / elapsed,
                    epsilon_now(dpsgd::AccountantKind::kRdp), left);
        std::fflush(stdout);
      }
      if (done % steps_per_epoch == 0 || done == steps) {
        history.push_back({done, accuracy(model, test), epsilon_now(dpsgd::AccountantKind::kPld)});
        std::printf("  test accuracy %.4f at step %lld (epsilon %.3f)\n", history.back().accuracy,
                    static_cast<long long>(done), history.back().epsilon);
      }
      if (done % checkpoint_every == 0 || done == steps) save_checkpoint();
    }

    const double test_accuracy = history.empty() ? accuracy(model, test) : history.back().accuracy;
    const double epsilon = epsilon_now(dpsgd::AccountantKind::kPld);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("test accuracy: %.4f\n", test_accuracy);
    std::printf("epsilon: %.4f at delta = %g (PLD, add/remove adjacency, truncated Poisson sampling, %lld steps)\n",
                epsilon, s.delta, static_cast<long long>(dp.next_step()));
    std::printf("time: %.1f s\n", seconds);
    report_releases(ledger, s.delta, checkpoint_path);
    if (!metrics_out.empty()) {
      const nlohmann::json metrics = {
          {"test_accuracy", test_accuracy},
          {"epsilon", std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr)},
          {"delta", s.delta},
          {"steps", steps},
          {"noise_multiplier", sigma},
          {"seconds", seconds},
          {"model", s.model},
          {"batch_size", s.batch_size},
          {"epochs", s.epochs}};
      dpsgd::write_file_atomically(metrics_out, metrics.dump(2) + "\n");
    }
    if (!plot_path.empty()) {
      char eps_title[96];
      std::snprintf(eps_title, sizeof(eps_title), "Epsilon spent (PLD, delta = %g)", s.delta);
      dpsgd_example::Series acc{"Test accuracy", "#1f77b4", {}, {}}, eps{eps_title, "#d62728", {}, {}};
      for (const auto& e : history) {
        acc.x.push_back(static_cast<double>(e.step));
        acc.y.push_back(e.accuracy);
        eps.x.push_back(static_cast<double>(e.step));
        eps.y.push_back(std::isfinite(e.epsilon) ? e.epsilon : 0.0);
      }
      dpsgd::write_file_atomically(plot_path, dpsgd_example::svg_line_charts({acc, eps}, "training step"));
    }
  } catch (const dpsgd::Error& e) {
    // Missing or corrupt data, a refused checkpoint, a bad argument: the user's input, status 2.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

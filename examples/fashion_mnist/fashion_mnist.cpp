// fashion_mnist: DP-SGD on Fashion-MNIST from the command line, on dpsgd::TrainingRun: Poisson batches
// of fixed capacity, ghost clipping, calibrated noise, the PLD accountant, progress, metrics, an SVG
// plot, and a run directory (definition, ledger, secret seed, checkpoint) that a resumed run continues.
#include <malloc.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "classifier.hpp"
#include "command_line.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/stop_signal.hpp"
#include "dpsgd/data/idx.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/gather_batch.hpp"
#include "eval_history.hpp"
#include "output_checks.hpp"
#include "run_outcome.hpp"
#include "step_driver.hpp"
#include "training_process.hpp"

namespace {

using dpsgd_example::EvalPoint;
using dpsgd_example::history_from_json;
using dpsgd_example::history_to_json;

using dpsgd::RowMajorMatrix;
using fashion_mnist::Classifier;

// The settings that define a run (with the data, q, capacity and sigma): a resume with others is refused.
struct Settings {
  std::string model = "cnn";
  double batch_size = 2048, learning_rate = 4.0, momentum = 0.9, clip_norm = 0.1;
  double epsilon = 3.0, delta = 1e-5;
  bool no_privacy = false;
  std::int64_t train_subset = 0;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";

  nlohmann::json to_json() const {
    return {{"model", model},       {"batch_size", batch_size}, {"learning_rate", learning_rate},
            {"momentum", momentum}, {"clip_norm", clip_norm},   {"epsilon", epsilon},
            {"delta", delta},       {"no_privacy", no_privacy}, {"train_subset", train_subset},
            {"data_dir", data_dir}};
  }
};

// Everything the command line sets.
struct Options {
  Settings s;
  double epochs = 28;
  std::int64_t test_subset = 0, checkpoint_every = 50;
  std::string metrics_out, plot_path, run_dir;
  std::optional<std::uint64_t> seed;
  std::optional<double> sigma;
  bool resume = false, distributed = false;
};

// Pixel statistics of the Fashion-MNIST training set (public constants of the data set).
constexpr float kPixelMean = 0.2860f, kPixelStd = 0.3530f;

// Parses the command line into `o`; returns an exit status when the program should stop now.
std::optional<int> parse_options(int argc, char** argv, Options& o) {
  CLI::App app{"Train a model on Fashion-MNIST with DP-SGD (dpsgd's main example)"};
  Settings& s = o.s;
  app.add_option("--data-dir", s.data_dir, "directory of the four IDX files (plain or .gz)");
  app.add_option("--model", s.model, "cnn (tanh CNN, default) or mlp")->check(CLI::IsMember({"cnn", "mlp"}));
  app.add_option("--epsilon", s.epsilon, "privacy budget (default 3)")->check(CLI::PositiveNumber);
  app.add_option("--delta", s.delta, "delta (default 1e-5)")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--noise-multiplier", o.sigma, "use this sigma and report its epsilon instead of calibrating")
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs, "passes over the data (a resume may change it: the run gets longer)")
      ->check(CLI::Range(0.001, 10000.0));
  app.add_option("--batch-size", s.batch_size, "expected batch size q N")->check(CLI::Range(1.0, 1e6));
  app.add_option("--learning-rate", s.learning_rate, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", s.momentum, "heavy-ball momentum in [0, 1)")->check(CLI::Range(0.0, 0.999));
  app.add_option("--clip-norm", s.clip_norm, "per-example clip norm C")->check(CLI::PositiveNumber);
  app.add_flag("--no-privacy", s.no_privacy, "train the same model without clipping or noise");
  app.add_option("--seed", o.seed, "explicit seed: reproducible, NOT for a released model (default: OS CSPRNG)");
  app.add_option("--train-subset", s.train_subset, "use only the first N training examples (smoke tests)")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{60000}));
  app.add_option("--test-subset", o.test_subset, "evaluate on the first N test examples")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{10000}));
  app.add_option("--metrics-out", o.metrics_out, "write final metrics as JSON");
  app.add_option("--plot", o.plot_path, "write test accuracy and epsilon against steps as an SVG file");
  app.add_option("--run-dir", o.run_dir,
                 "the run's directory: definition, ledger, secret seed, checkpoint (default: a new one under runs/)");
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")->check(CLI::PositiveNumber);
  app.add_flag("--resume", o.resume, "continue the run in --run-dir (or start it there if it holds none)");
  app.add_flag("--distributed", o.distributed,
               "data-parallel under mpirun: every rank clips its share of each batch, rank 0 writes the run "
               "(builds with MPI only; see docs/distributed.md)");
  return dpsgd_example::parse_training_command_line(app, argc, argv, o.resume, o.run_dir);
}

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

// The run: a new one calibrates sigma to the target epsilon with the library's capacity rule, a
// resumed one keeps its own sigma and capacity (dpsgd::plan_run).
dpsgd::TrainingRunConfig run_config(const Options& o, std::int64_t n) {
  const Settings& s = o.s;
  if (s.batch_size > static_cast<double>(n))
    throw dpsgd::InvalidArgument("--batch-size must be <= the training set size");
  return dpsgd::plan_run({.directory = o.run_dir,
                          .resume = o.resume,
                          .dataset_size = n,
                          .expected_batch_size = s.batch_size,
                          .epochs = o.epochs,
                          .clip = dpsgd::ClipConfig::flat(s.clip_norm),
                          .epsilon = s.epsilon,
                          .delta = s.delta,
                          .noise_multiplier = o.sigma,
                          .no_privacy = s.no_privacy,
                          .settings = s.to_json(),
                          .seed = o.seed});
}

// The private training loop and what it shows: the run, the model, the data, the history it extends.
class Trainer {
 public:
  Trainer(const Options& o, dpsgd_example::StepDriver& driver, Classifier& model, const dpsgd::LabelledImages& train,
          const dpsgd::LabelledImages& test)
      : o_(o), driver_(driver), run_(driver.run()), model_(model), train_(train), test_(test) {
    history_ = history_from_json(run_.restored_extra());
  }

  // Trains until the plan is done or a stop is requested; checkpoints as it goes and at the end. With
  // several processes each clips its own slots of the batch (the driver sums them).
  // Returns whether it stopped early.
  bool train(const dpsgd::StopSignal& stop) {
    std::vector<float> gradient(static_cast<std::size_t>(model_.num_parameters()));
    const auto first_step = static_cast<std::int64_t>(run_.next_step());
    const auto start = std::chrono::steady_clock::now();
    RowMajorMatrix<float> inputs;
    std::vector<std::int32_t> labels;
    bool stopped = false;
    while (!run_.finished() && !(stopped = driver_.stop_now(stop.requested()))) {
      const dpsgd::Batch batch = run_.next_batch();
      const dpsgd::Batch mine = dpsgd_example::slice_of(batch, driver_.slots(batch));
      inputs.resize(static_cast<Eigen::Index>(mine.indices.size()), 784);
      labels.resize(mine.indices.size());
      dpsgd::gather_batch<float>(mine, train_.images, train_.labels, inputs, labels);
      model_.batch_gradient(inputs, labels, mine.mask, o_.s.no_privacy ? nullptr : &run_.config().clip, gradient);
      driver_.step(model_.parameters(), gradient, batch);
      check_finite();
      const auto done = static_cast<std::int64_t>(run_.next_step());
      // Progress and evaluation use only held-out data; other ranks skip them and wait at the next step.
      if (driver_.reports() && (done % report_every() == 0 || run_.finished()))
        report_progress(done, first_step, start);
      if (driver_.reports() && (done % steps_per_epoch() == 0 || run_.finished())) evaluate(done);
      if (done % o_.checkpoint_every == 0 || run_.finished()) checkpoint();
    }
    if (stopped) checkpoint();
    return stopped;
  }

  double final_accuracy() { return history_.empty() ? model_.accuracy(test_) : history_.back().value; }
  // The PLD epsilon so far: the accountant the run is judged by.
  double epsilon() const {
    return o_.s.no_privacy ? std::numeric_limits<double>::infinity() : run_.epsilon(o_.s.delta);
  }
  const std::vector<EvalPoint>& history() const { return history_; }

 private:
  std::int64_t steps_per_epoch() const {
    return std::max<std::int64_t>(1, std::llround(1.0 / run_.config().sampling_rate));
  }
  std::int64_t report_every() const { return std::max<std::int64_t>(1, steps_per_epoch() / 4); }

  // The parameters are released anyway, so checking them costs no privacy. A non-finite model stops
  // the run before it can overwrite the last good checkpoint.
  void check_finite() {
    for (const float v : model_.parameters()) {
      if (!std::isfinite(v)) {
        throw dpsgd::Error("the parameters became non-finite at step " + std::to_string(run_.next_step() - 1) +
                           " (learning rate or clip norm too large?); the last checkpoint is kept");
      }
    }
  }

  // Only public or held-out figures: steps per second (not realised batch sizes, which are private)
  // and the loss on held-out test images (not on the private batches). The epsilon is the PLD's, the
  // one the run is judged by (a few hundredths of a second per line).
  void report_progress(std::int64_t done, std::int64_t first_step, std::chrono::steady_clock::time_point start) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(done - first_step) / elapsed;
    std::printf("  epoch %6.2f  step %6lld/%lld  held-out loss %.4f  %6.1f steps/s  epsilon %6.3f  %5.0fs left\n",
                static_cast<double>(done) * run_.config().sampling_rate, static_cast<long long>(done),
                static_cast<long long>(run_.planned_steps()), model_.heldout_loss(test_, 1000), rate, epsilon(),
                static_cast<double>(run_.planned_steps() - done) / rate);
    std::fflush(stdout);
  }

  void evaluate(std::int64_t done) {
    history_.push_back({done, model_.accuracy(test_), epsilon()});
    std::printf("  test accuracy %.4f at step %lld (epsilon %.3f)\n", history_.back().value,
                static_cast<long long>(done), history_.back().epsilon);
  }

  void checkpoint() { driver_.checkpoint(model_.parameters(), history_to_json(history_)); }

  const Options& o_;
  dpsgd_example::StepDriver& driver_;
  const dpsgd::TrainingRun& run_;
  Classifier& model_;
  const dpsgd::LabelledImages &train_, &test_;
  std::vector<EvalPoint> history_;
};

void print_start(const Options& o, const dpsgd::TrainingRun& run, const Classifier& model) {
  const dpsgd::DpSgdConfig& c = run.config();
  std::printf("fashion_mnist: %s, %lld parameters, N=%lld, q=%.5f, capacity %lld, %lld steps, sigma=%.4f, C=%g%s\n",
              o.s.model.c_str(), static_cast<long long>(model.num_parameters()), static_cast<long long>(c.dataset_size),
              c.sampling_rate, static_cast<long long>(c.capacity), static_cast<long long>(run.planned_steps()),
              c.noise_multiplier, o.s.clip_norm, o.s.no_privacy ? " (no privacy)" : "");
  dpsgd_example::print_run_state(run, o.seed.has_value());
}

// Everything the run made public, with its privacy cost: the parameters (every checkpoint and the
// final model) are covered by the ledger's epsilon; the evaluation figures use test data only.
void report_releases(const dpsgd::TrainingRun& run, double delta) {
  const std::string dir = run.directory();
  std::printf("releases:\n");
  std::printf("  model parameters after %lld charged steps: epsilon %.4f at delta %g (the ledger's total)\n",
              static_cast<long long>(run.ledger().steps()), run.epsilon(delta), delta);
  std::printf("  %s/checkpoint.json: parameters at the last checkpoint, within the same total\n", dir.c_str());
  std::printf("  %s/ledger.json and run.json: the steps charged and the mechanism (public)\n", dir.c_str());
  std::printf("  not released: %s/seed (secret, owner-only)\n", dir.c_str());
  std::printf("  test accuracy and held-out loss: test data only, no privacy cost\n");
  std::printf("  nothing computed from private batches (their loss, their realised sizes) was printed or saved\n");
}

void write_outputs(const Options& o, const Trainer& trainer, double test_accuracy, double epsilon,
                   const dpsgd::TrainingRun& run, double seconds) {
  if (!o.metrics_out.empty()) {
    const nlohmann::json metrics = {
        {"test_accuracy", test_accuracy},
        {"epsilon", std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr)},
        {"delta", o.s.delta},
        {"steps", run.next_step()},
        {"noise_multiplier", run.config().noise_multiplier},
        {"capacity", run.config().capacity},
        {"seconds", seconds},
        {"model", o.s.model},
        {"batch_size", o.s.batch_size},
        {"epochs", o.epochs},
        {"run_dir", run.directory()}};
    dpsgd::write_file_atomically(o.metrics_out, metrics.dump(2) + "\n");
  }
  if (!o.plot_path.empty()) {
    dpsgd::write_file_atomically(o.plot_path,
                                 dpsgd_example::history_plot(trainer.history(), "Test accuracy", o.s.delta));
  }
}

// The model, from the run's initialisation seed or the checkpoint it resumes from.
void restore(const dpsgd::TrainingRun& run, Classifier& model) {
  if (run.restored_parameters().empty()) return;
  if (static_cast<std::int64_t>(run.restored_parameters().size()) != model.num_parameters())
    throw dpsgd::FormatError("checkpoint refused: its parameter count differs from the model's");
  std::copy(run.restored_parameters().begin(), run.restored_parameters().end(), model.parameters().begin());
}

// Training and its report, the same for one process and for the ranks of a distributed run.
int train_and_report(const Options& o, dpsgd_example::StepDriver& driver, const dpsgd::LabelledImages& train,
                     const dpsgd::LabelledImages& test, std::chrono::steady_clock::time_point start) {
  const dpsgd::TrainingRun& run = driver.run();
  Classifier model(o.s.model, run.initialisation_seed());
  restore(run, model);
  if (driver.reports()) print_start(o, run, model);

  const dpsgd::StopSignal stop;
  Trainer trainer(o, driver, model, train, test);
  if (trainer.train(stop)) return dpsgd_example::report_stop(stop, run, trainer.epsilon());
  if (!driver.reports()) return 0;

  const double test_accuracy = trainer.final_accuracy();
  const double epsilon = trainer.epsilon();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("test accuracy: %.4f\n", test_accuracy);
  std::printf("epsilon: %.4f at delta = %g (PLD, add/remove adjacency, truncated Poisson sampling, %llu steps)\n",
              epsilon, o.s.delta, static_cast<unsigned long long>(run.next_step()));
  std::printf("time: %.1f s\n", seconds);
  report_releases(run, o.s.delta);
  write_outputs(o, trainer, test_accuracy, epsilon, run, seconds);
  return 0;
}

int run_main(Options& o, const dpsgd_example::TrainingProcess& process) {
  const auto start = std::chrono::steady_clock::now();
  const dpsgd::LabelledImages train = load(o.s.data_dir, "train", o.s.train_subset);
  const dpsgd::LabelledImages test = load(o.s.data_dir, "t10k", o.test_subset);
  return process.run_training(
      [&] { return run_config(o, train.images.rows()); },
      std::make_unique<dpsgd::Momentum<float>>(o.s.learning_rate, o.s.momentum),
      [&](dpsgd_example::StepDriver& driver) { return train_and_report(o, driver, train, test, start); });
}

// Keeps the step's large temporaries (im2col buffers and activations of a 2,357-slot batch, tens of
// MB) in the heap between steps: glibc would otherwise map and unmap each one every step, and
// faulting their pages in again cost about 0.5 s a step on the 2-core machine of docs/fashion_mnist.md
// (sys time 7.5 s of 21 s for 15 steps; 1.4 s with this). A program's choice, not the library's.
void keep_step_buffers_mapped() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
  keep_step_buffers_mapped();
  Options options;
  if (const auto status = parse_options(argc, argv, options)) return *status;
  const dpsgd_example::TrainingProcess process(options.distributed, argc, argv);
  if (options.run_dir.empty()) options.run_dir = dpsgd::TrainingRun::fresh_directory("runs", "fashion_mnist");
  // Checked before anything is created, where the run's files are (rank 0), and agreed by all ranks.
  if (!process.agreed(!process.reports() || dpsgd_example::outputs_usable(
                                                {{"--metrics-out", options.metrics_out}, {"--plot", options.plot_path}},
                                                options.run_dir, options.resume)))
    return 2;
  return dpsgd_example::run_reporting_errors([&] { return run_main(options, process); });
}

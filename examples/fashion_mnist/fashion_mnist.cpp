// fashion_mnist: DP-SGD on Fashion-MNIST from the command line, on dpsgd::TrainingRun: Poisson batches
// of fixed capacity, ghost clipping, calibrated noise, the PLD accountant, progress, metrics, an SVG
// plot, and a run directory (definition, ledger, secret seed, checkpoint) that a resumed run continues.
// Models on pixels, or on data-independent scattering features (no privacy cost to compute them).
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
#include "dpsgd/core/validate.hpp"
#include "dpsgd/data/idx.hpp"
#include "dpsgd/features/channel_whitening.hpp"
#include "dpsgd/features/group_normalisation.hpp"
#include "dpsgd/features/scattering_2d.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/gather_batch.hpp"
#include "eval_history.hpp"
#include "output_checks.hpp"
#include "parameter_average.hpp"
#include "run_outcome.hpp"
#include "step_driver.hpp"
#include "training_process.hpp"
#include "wait_policy.hpp"

namespace {

using dpsgd_example::EvalPoint;
using dpsgd_example::history_from_json;
using dpsgd_example::history_to_json;

using dpsgd::RowMajorMatrix;
using fashion_mnist::Classifier;

// The settings that define a run (with the data, q, capacity and sigma): a resume with others is refused.
struct Settings {
  std::string model = "scatter-linear";
  double batch_size = 2048, learning_rate = 4.0, momentum = 0.9, clip_norm = 0.1;
  double epsilon = 3.0, delta = 1e-5, ema = 0.0;
  // The DP feature statistics (--feature-stats-noise; 0: off) and their per-example clip norm.
  double feature_stats_noise = 0.0, feature_stats_clip = 160.0;
  // The DP channel whitening (--whiten-noise; 0: off) and its eigenvalue floor.
  double whiten_noise = 0.0, whiten_floor = 1.0;
  // The learning rate's schedule over the planned steps (constant, cosine or linear to 0).
  std::string learning_rate_schedule = "constant";
  bool no_privacy = false;
  std::int64_t train_subset = 0, validation = 0, scatter_groups = 27;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";

  nlohmann::json to_json() const {
    nlohmann::json settings = {
        {"model", model},           {"batch_size", batch_size},         {"learning_rate", learning_rate},
        {"momentum", momentum},     {"clip_norm", clip_norm},           {"epsilon", epsilon},
        {"delta", delta},           {"no_privacy", no_privacy},         {"train_subset", train_subset},
        {"validation", validation}, {"scatter_groups", scatter_groups}, {"ema", ema},
        {"data_dir", data_dir}};
    if (feature_stats_noise > 0.0) {  // absent when off: runs made before the option resume as before
      settings["feature_stats_noise"] = feature_stats_noise;
      settings["feature_stats_clip"] = feature_stats_clip;
    }
    if (learning_rate_schedule != "constant") settings["learning_rate_schedule"] = learning_rate_schedule;
    if (whiten_noise > 0.0) {
      settings["whiten_noise"] = whiten_noise;
      settings["whiten_floor"] = whiten_floor;
    }
    return settings;
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
  bool resume = false, distributed = false, test_once = false;
};

// Defaults of the scattering heads (the pixel models' are in Settings and Options), chosen on the
// validation split (docs/fashion_mnist.md).
constexpr double kScatteringBatchSize = 8192, kScatteringLearningRate = 16, kScatteringEpochs = 40;
// The noise multiplier of the channel whitening's release, on by default for the scattering heads:
// this over the target epsilon (6 at epsilon 3), so the release keeps about the same share of the
// budget at every epsilon (a Gaussian mechanism's epsilon falls as 1 / sigma).
constexpr double kScatteringWhitenNoiseTimesEpsilon = 18;

// The scattering features' channels for 28 x 28 images, J = 2, L = 8: 1 + 16 + 64.
constexpr std::int64_t kScatteringChannels = 81;

// Pixel statistics of the Fashion-MNIST training set (public constants of the data set).
constexpr float kPixelMean = 0.2860f, kPixelStd = 0.3530f;

// The scattering heads train best with larger batches and steps than the pixel CNN (chosen on the
// validation split, docs/fashion_mnist.md): their defaults where the command line sets none.
void apply_model_defaults(const CLI::App& app, Options& o) {
  if (!Classifier::takes_scattering_features(o.s.model)) return;
  if (app.count("--batch-size") == 0) o.s.batch_size = kScatteringBatchSize;
  if (app.count("--learning-rate") == 0) o.s.learning_rate = kScatteringLearningRate;
  if (app.count("--epochs") == 0) o.epochs = kScatteringEpochs;
  // Whitening is a release, and a run makes at most one (--feature-stats-noise is the other); a
  // distributed run cannot release yet, so there it stays off unless asked for (and then refused).
  if (app.count("--whiten-noise") == 0 && o.s.feature_stats_noise == 0.0 && !o.distributed)
    o.s.whiten_noise = kScatteringWhitenNoiseTimesEpsilon / o.s.epsilon;
}

// Parses the command line into `o`; returns an exit status when the program should stop now.
std::optional<int> parse_options(int argc, char** argv, Options& o) {
  CLI::App app{"Train a model on Fashion-MNIST with DP-SGD (dpsgd's main example)"};
  Settings& s = o.s;
  app.add_option("--data-dir", s.data_dir, "directory of the four IDX files (plain or .gz)");
  app.add_option("--model", s.model,
                 "scatter-linear (default) or scatter-cnn on scattering features; cnn (tanh CNN) or mlp on pixels")
      ->check(CLI::IsMember({"cnn", "mlp", "scatter-linear", "scatter-cnn"}));
  app.add_option("--scatter-groups", s.scatter_groups,
                 "groups of the per-example group normalisation of the 81 scattering channels (1, 3, 9, 27 or 81)")
      ->check(CLI::IsMember({1, 3, 9, 27, 81}));
  app.add_option("--feature-stats-noise", s.feature_stats_noise,
                 "standardise each scattering feature with its mean and variance over the training set, released "
                 "once with Gaussian noise of this multiplier and charged to the run's ledger (0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--feature-stats-clip", s.feature_stats_clip,
                 "clip norm of each example's (features, squared features) row in that release")
      ->check(CLI::PositiveNumber);
  app.add_option("--whiten-noise", s.whiten_noise,
                 "decorrelate the 81 scattering channels with a matrix from their second moments over the training "
                 "set, released once with Gaussian noise of this multiplier and charged to the run's ledger (0: off; "
                 "default 18 / epsilon for the scattering heads unless --feature-stats-noise or --distributed)")
      ->check(CLI::NonNegativeNumber);
  app.add_option(
         "--whiten-floor", s.whiten_floor,
         "added to every eigenvalue of the released channel moments before inverting (bounds the gain; default 1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--validation", s.validation,
                 "hold out the last N training examples and report accuracy on them; the test set is not touched "
                 "(for choosing hyperparameters)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{30000}));
  app.add_option("--ema", s.ema,
                 "evaluate and report an exponential moving average of the iterates with this decay (0: off; "
                 "post-processing, no privacy cost)")
      ->check(CLI::Range(0.0, 0.9999));
  app.add_flag("--test-once", o.test_once,
               "evaluate the test set once, at the end (no per-epoch test accuracy or held-out loss)");
  app.add_option("--epsilon", s.epsilon, "privacy budget (default 3)")->check(CLI::PositiveNumber);
  app.add_option("--delta", s.delta, "delta (default 1e-5)")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--noise-multiplier", o.sigma, "use this sigma and report its epsilon instead of calibrating")
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs,
                 "passes over the data (default 40 for the scattering heads, 28 for cnn and mlp; a resume may "
                 "lengthen the run)")
      ->check(CLI::Range(0.001, 10000.0));
  app.add_option("--batch-size", s.batch_size,
                 "expected batch size q N (default 8192 for the scattering heads, 2048 for cnn and mlp)")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--learning-rate", s.learning_rate,
                 "learning rate (default 16 for the scattering heads, 4 for cnn and mlp)")
      ->check(CLI::PositiveNumber);
  app.add_option("--learning-rate-schedule", s.learning_rate_schedule,
                 "constant (default), or cosine / linear decay to 0 over the planned steps")
      ->check(CLI::IsMember({"constant", "cosine", "linear"}));
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
  const auto status = dpsgd_example::parse_training_command_line(app, argc, argv, o.resume, o.run_dir);
  if (!status) apply_model_defaults(app, o);
  return status;
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
  return data;
}

// The last `count` examples of `data`, removed from it: a split fixed by position, chosen without
// looking at the data.
dpsgd::LabelledImages split_off(dpsgd::LabelledImages& data, std::int64_t count) {
  const std::int64_t keep = data.images.rows() - count;
  if (count <= 0) return {};
  if (keep < 10)
    dpsgd::throw_invalid_value(
        "--validation", "at most the training set size minus 10 (" + std::to_string(data.images.rows() - 10) + ")",
        count);
  dpsgd::LabelledImages held{.images = data.images.bottomRows(count), .labels = {}, .height = 28, .width = 28};
  held.labels.assign(data.labels.begin() + keep, data.labels.end());
  data.images.conservativeResize(keep, Eigen::NoChange);
  data.labels.resize(static_cast<std::size_t>(keep));
  return held;
}

// What the models see: pixels standardised with public constants, or the scattering features of
// the [0, 1] pixels, group-normalised per example. Both are functions of one image at a time (no
// statistic of the private training set), so they cost no privacy.
class Inputs {
 public:
  explicit Inputs(const Settings& s) : s_(s) {
    if (Classifier::takes_scattering_features(s.model))
      scattering_ = std::make_unique<dpsgd::Scattering2D>(
          dpsgd::ScatteringConfig{.height = 28, .width = 28, .scales = 2, .angles = 8});
  }

  void prepare(dpsgd::LabelledImages& data, const char* name) const {
    if (data.images.rows() == 0) return;
    if (!scattering_) {
      data.images.array() = (data.images.array() - kPixelMean) / kPixelStd;
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    data.images = scattering_->transform_rows(data.images);
    dpsgd::group_normalise_rows(data.images, scattering_->channels(), s_.scatter_groups);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("scattering features of %lld %s images (J=2, L=8: 81 x 7 x 7): %.1f s, %.0f images/s\n",
                static_cast<long long>(data.images.rows()), name, seconds,
                static_cast<double>(data.images.rows()) / seconds);
    std::fflush(stdout);
  }

 private:
  const Settings& s_;
  std::unique_ptr<dpsgd::Scattering2D> scattering_;
};

// The training examples, the validation split carved from them (may be empty), and the test set, as
// the model takes them.
struct DataSets {
  dpsgd::LabelledImages train, validation, test;

  // What the per-epoch figures use: the validation split if there is one, else the test set unless
  // --test-once asks to touch it only at the end.
  const dpsgd::LabelledImages* per_epoch(const Options& o) const {
    if (validation.images.rows() > 0) return &validation;
    return o.test_once ? nullptr : &test;
  }
};

DataSets load_data(const Options& o) {
  // A tuning run (--validation) does not read the test set at all.
  DataSets data{.train = load(o.s.data_dir, "train", o.s.train_subset), .validation = {}, .test = {}};
  if (o.s.validation == 0) data.test = load(o.s.data_dir, "t10k", o.test_subset);
  data.validation = split_off(data.train, o.s.validation);
  const Inputs inputs(o.s);
  inputs.prepare(data.train, "training");
  inputs.prepare(data.validation, "validation");
  inputs.prepare(data.test, "test");
  return data;
}

// The run's one release of training-set statistics, if any (the scattering features' count `features`
// is public). --feature-stats-noise: per example the row (x, x^2) of its group-normalised features, so
// the noisy sums give every feature's mean and second moment. --whiten-noise: per example the upper
// triangle of its channels' second-moment matrix (channel_moment_row), whose norm is at most ||x||^2 <=
// `features` under group normalisation: that bound is the clip norm, so nothing is clipped.
std::optional<dpsgd::SumRelease> statistics_release(const Settings& s, std::int64_t features) {
  if (s.feature_stats_noise > 0.0)
    return dpsgd::SumRelease{
        .dimension = 2 * features, .clip_norm = s.feature_stats_clip, .noise_multiplier = s.feature_stats_noise};
  if (s.whiten_noise > 0.0)
    return dpsgd::SumRelease{.dimension = dpsgd::channel_moment_dimension(kScatteringChannels),
                             .clip_norm = static_cast<double>(features),
                             .noise_multiplier = s.whiten_noise};
  return std::nullopt;
}

// Multiplies every pixel's 81 channels, in the three sets alike, by the whitening matrix of the
// released channel moments (the run's release: computed and charged once, a resumed run's saved
// values), so whitening costs nothing beyond its charge in the ledger.
void whiten_features(const Settings& s, dpsgd_example::StepDriver& driver, DataSets& data) {
  const RowMajorMatrix<float>& train = data.train.images;
  const std::vector<double> sums = driver.release_sum([&](std::int64_t i, std::span<double> row) {
    dpsgd::channel_moment_row({train.row(i).data(), static_cast<std::size_t>(train.cols())}, kScatteringChannels, row);
  });
  const double pixels = static_cast<double>(driver.run().config().dataset_size) *
                        static_cast<double>(train.cols() / kScatteringChannels);  // public
  const RowMajorMatrix<float> whitening = dpsgd::channel_whitening(sums, kScatteringChannels, pixels, s.whiten_floor);
  for (dpsgd::LabelledImages* set : {&data.train, &data.validation, &data.test})
    if (set->images.rows() > 0) dpsgd::whiten_channels(set->images, whitening);
}

// Standardises every feature of the three sets alike with the released statistics: (x - mean) /
// sqrt(variance), the variance floored at kVarianceFloor (noise can make a small one negative). The
// statistics are the run's release (computed and charged once; a resumed run's saved values), so
// normalising costs nothing beyond its charge in the ledger.
constexpr double kVarianceFloor = 1e-2;

void standardise_features(dpsgd_example::StepDriver& driver, DataSets& data) {
  const RowMajorMatrix<float>& train = data.train.images;
  const Eigen::Index f = train.cols();
  const std::vector<double> sums = driver.release_sum([&](std::int64_t i, std::span<double> row) {
    for (Eigen::Index j = 0; j < f; ++j) {
      const double x = train(i, j);
      row[static_cast<std::size_t>(j)] = x;
      row[static_cast<std::size_t>(f + j)] = x * x;
    }
  });
  const double n = static_cast<double>(driver.run().config().dataset_size);  // public
  Eigen::RowVectorXf mean(f), inverse_std(f);
  for (Eigen::Index j = 0; j < f; ++j) {
    const double m = sums[static_cast<std::size_t>(j)] / n;
    const double variance = sums[static_cast<std::size_t>(f + j)] / n - m * m;
    mean(j) = static_cast<float>(m);
    inverse_std(j) = static_cast<float>(1.0 / std::sqrt(std::max(variance, kVarianceFloor)));
  }
  for (dpsgd::LabelledImages* set : {&data.train, &data.validation, &data.test})
    if (set->images.rows() > 0)
      set->images = ((set->images.rowwise() - mean).array().rowwise() * inverse_std.array()).matrix();
}

// The run: a new one calibrates sigma to the target epsilon with the library's capacity rule, a
// resumed one keeps its own sigma and capacity (dpsgd::plan_run).
dpsgd::TrainingRunConfig run_config(const Options& o, std::int64_t n, std::int64_t features) {
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
                          .seed = o.seed,
                          .release = statistics_release(s, features),
                          .schedule = {.kind = dpsgd::LearningRateSchedule::kind_named("--learning-rate-schedule",
                                                                                       s.learning_rate_schedule)}});
}

// The private training loop and what it shows: the run, the model, the data, the history it extends.
class Trainer {
 public:
  Trainer(const Options& o, dpsgd_example::StepDriver& driver, Classifier& model, const dpsgd::LabelledImages& train,
          const dpsgd::LabelledImages* heldout, const dpsgd::LabelledImages& test)
      : o_(o), driver_(driver), run_(driver.run()), model_(model), train_(train), heldout_(heldout), test_(test) {
    history_ = history_from_json(run_.restored_extra());
    average_.restore(run_.restored_extra(), model_.parameters().size());
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
      inputs.resize(static_cast<Eigen::Index>(mine.indices.size()), train_.images.cols());
      labels.resize(mine.indices.size());
      dpsgd::gather_batch<float>(mine, train_.images, train_.labels, inputs, labels);
      model_.batch_gradient(inputs, labels, mine.mask, o_.s.no_privacy ? nullptr : &run_.config().clip, gradient);
      driver_.step(model_.parameters(), gradient, batch);
      average_.update(model_.parameters(), static_cast<std::int64_t>(run_.next_step()) - 1);
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

  // The final model's accuracy on the validation split when there is one (the test set is then never
  // touched: such runs choose hyperparameters), else on the test set: from the last per-epoch
  // evaluation when that used it, else evaluated now, the only time the test set is touched.
  double final_accuracy() {
    if (heldout_ != nullptr && !history_.empty()) return history_.back().value;
    return averaged([&] { return model_.accuracy(heldout_ != nullptr ? *heldout_ : test_); });
  }
  const char* final_accuracy_name() const { return heldout_ != nullptr ? heldout_name() : "test"; }
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
    std::printf("  epoch %6.2f  step %6lld/%lld", static_cast<double>(done) * run_.config().sampling_rate,
                static_cast<long long>(done), static_cast<long long>(run_.planned_steps()));
    if (heldout_ != nullptr)
      std::printf("  %s loss %.4f", heldout_name(), averaged([&] { return model_.heldout_loss(*heldout_, 1000); }));
    std::printf("  %6.1f steps/s  epsilon %6.3f  %5.0fs left\n", rate, epsilon(),
                static_cast<double>(run_.planned_steps() - done) / rate);
    std::fflush(stdout);
  }

  void evaluate(std::int64_t done) {
    if (heldout_ == nullptr) return;
    history_.push_back({done, averaged([&] { return model_.accuracy(*heldout_); }), epsilon()});
    std::printf("  %s accuracy %.4f at step %lld (epsilon %.3f)\n", heldout_name(), history_.back().value,
                static_cast<long long>(done), history_.back().epsilon);
  }

  const char* heldout_name() const { return heldout_ == &test_ ? "test" : "validation"; }

  // The checkpoint holds the iterate (a resume continues from it) and, in its extra, the average.
  void checkpoint() {
    nlohmann::json extra = history_to_json(history_);
    if (average_.enabled()) extra["average"] = average_.to_json();
    driver_.checkpoint(model_.parameters(), extra);
  }

  // `figure()` of the averaged parameters when --ema is on, of the iterate otherwise.
  template <typename Figure>
  double averaged(Figure figure) {
    average_.swap_into(model_.parameters());
    const double value = figure();
    average_.swap_into(model_.parameters());
    return value;
  }

  const Options& o_;
  dpsgd_example::StepDriver& driver_;
  const dpsgd::TrainingRun& run_;
  Classifier& model_;
  const dpsgd::LabelledImages& train_;
  const dpsgd::LabelledImages* heldout_;  // per-epoch figures: the validation split, the test set, or none
  const dpsgd::LabelledImages& test_;
  std::vector<EvalPoint> history_;
  dpsgd_example::ParameterAverage average_{o_.s.ema};
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
// final model) are covered by the ledger's epsilon; the evaluation figures use examples not trained on.
void report_releases(const Options& o, const dpsgd::TrainingRun& run, double delta) {
  const std::string dir = run.directory();
  std::printf("releases:\n");
  std::printf("  model parameters after %lld charged steps: epsilon %.4f at delta %g (the ledger's total)\n",
              static_cast<long long>(run.ledger().steps()), run.epsilon(delta), delta);
  if (!run.ledger().releases().empty() && o.s.feature_stats_noise > 0.0)
    std::printf(
        "  %s/release.json: every feature's noisy sum and sum of squares (noise multiplier %g, clip %g), "
        "charged in the same ledger and total\n",
        dir.c_str(), o.s.feature_stats_noise, o.s.feature_stats_clip);
  if (!run.ledger().releases().empty() && o.s.whiten_noise > 0.0)
    std::printf(
        "  %s/release.json: the scattering channels' noisy second-moment matrix (noise multiplier %g, clip "
        "the feature count), charged in the same ledger and total\n",
        dir.c_str(), o.s.whiten_noise);
  std::printf("  %s/checkpoint.json: parameters at the last checkpoint, within the same total\n", dir.c_str());
  std::printf("  %s/ledger.json and run.json: the steps charged and the mechanism (public)\n", dir.c_str());
  std::printf("  not released: %s/seed (secret, owner-only)\n", dir.c_str());
  if (o.s.ema > 0.0)
    std::printf("  the figures are of the moving average of all iterates (decay %g): post-processing, same total\n",
                o.s.ema);
  if (Classifier::takes_scattering_features(o.s.model))
    std::printf("  scattering features and their group normalisation: per image, no statistic of the data set%s\n",
                o.s.feature_stats_noise > 0.0 ? "; then standardised with the released statistics"
                : o.s.whiten_noise > 0.0      ? "; then whitened with the released channel moments"
                                              : "");
  std::printf("  accuracy and held-out loss: %s only (not trained on), no privacy cost\n",
              o.s.validation > 0 ? "the validation split" : "test data");
  std::printf("  nothing computed from private batches (their loss, their realised sizes) was printed or saved\n");
}

void write_outputs(const Options& o, const Trainer& trainer, double accuracy, double epsilon,
                   const dpsgd::TrainingRun& run, double seconds) {
  if (!o.metrics_out.empty()) {
    const nlohmann::json metrics = {
        {std::string(trainer.final_accuracy_name()) + "_accuracy", accuracy},
        {"epsilon", std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr)},
        {"delta", o.s.delta},
        {"steps", run.next_step()},
        {"noise_multiplier", run.config().noise_multiplier},
        {"capacity", run.config().capacity},
        {"seconds", seconds},
        {"model", o.s.model},
        {"training_examples", run.config().dataset_size},
        {"batch_size", o.s.batch_size},
        {"epochs", o.epochs},
        {"run_dir", run.directory()}};
    dpsgd::write_file_atomically(o.metrics_out, metrics.dump(2) + "\n");
  }
  if (!o.plot_path.empty()) {
    dpsgd::write_file_atomically(
        o.plot_path, dpsgd_example::history_plot(
                         trainer.history(), o.s.validation > 0 ? "Validation accuracy" : "Test accuracy", o.s.delta));
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
int train_and_report(const Options& o, dpsgd_example::StepDriver& driver, const DataSets& data,
                     std::chrono::steady_clock::time_point start) {
  const dpsgd::TrainingRun& run = driver.run();
  Classifier model(o.s.model, run.initialisation_seed());
  restore(run, model);
  if (driver.reports()) print_start(o, run, model);

  const dpsgd::StopSignal stop;
  Trainer trainer(o, driver, model, data.train, data.per_epoch(o), data.test);
  if (trainer.train(stop)) return dpsgd_example::report_stop(stop, run, trainer.epsilon());
  if (!driver.reports()) return 0;

  const double accuracy = trainer.final_accuracy();
  const double epsilon = trainer.epsilon();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s accuracy: %.4f\n", trainer.final_accuracy_name(), accuracy);
  std::printf("epsilon: %.4f at delta = %g (PLD, add/remove adjacency, truncated Poisson sampling, %llu steps)\n",
              epsilon, o.s.delta, static_cast<unsigned long long>(run.next_step()));
  std::printf("time: %.1f s\n", seconds);
  report_releases(o, run, o.s.delta);
  write_outputs(o, trainer, accuracy, epsilon, run, seconds);
  return 0;
}

// Combinations the options alone cannot refuse.
void check_combinations(const Options& o) {
  if (o.s.feature_stats_noise > 0.0 && !Classifier::takes_scattering_features(o.s.model))
    throw dpsgd::InvalidArgument(
        "--feature-stats-noise standardises scattering features: it needs --model "
        "scatter-linear or scatter-cnn, got --model " +
        o.s.model);
  if (o.s.feature_stats_noise > 0.0 && o.distributed)
    throw dpsgd::InvalidArgument("--feature-stats-noise is not available with --distributed yet");
  if (o.s.whiten_noise > 0.0 && !Classifier::takes_scattering_features(o.s.model))
    throw dpsgd::InvalidArgument(
        "--whiten-noise whitens scattering channels: it needs --model scatter-linear or scatter-cnn, got --model " +
        o.s.model);
  if (o.s.whiten_noise > 0.0 && o.distributed)
    throw dpsgd::InvalidArgument("--whiten-noise is not available with --distributed yet");
  if (o.s.whiten_noise > 0.0 && o.s.feature_stats_noise > 0.0)
    throw dpsgd::InvalidArgument("--whiten-noise and --feature-stats-noise: a run makes one release; choose one");
}

int run_main(Options& o, const dpsgd_example::TrainingProcess& process) {
  const auto start = std::chrono::steady_clock::now();
  check_combinations(o);
  DataSets data = load_data(o);
  return process.run_training([&] { return run_config(o, data.train.images.rows(), data.train.images.cols()); },
                              std::make_unique<dpsgd::Momentum<float>>(o.s.learning_rate, o.s.momentum),
                              [&](dpsgd_example::StepDriver& driver) {
                                if (o.s.feature_stats_noise > 0.0) standardise_features(driver, data);
                                if (o.s.whiten_noise > 0.0) whiten_features(o.s, driver, data);
                                return train_and_report(o, driver, data, start);
                              });
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
  if (!options.distributed) dpsgd_example::passive_openmp_waits(argv);  // mpirun's processes keep theirs
  const dpsgd_example::TrainingProcess process(options.distributed, argc, argv);
  if (options.run_dir.empty()) options.run_dir = dpsgd::TrainingRun::fresh_directory("runs", "fashion_mnist");
  // Checked before anything is created, where the run's files are (rank 0), and agreed by all ranks.
  if (!process.agreed(!process.reports() || dpsgd_example::outputs_usable(
                                                {{"--metrics-out", options.metrics_out}, {"--plot", options.plot_path}},
                                                options.run_dir, options.resume)))
    return 2;
  return dpsgd_example::run_reporting_errors([&] { return run_main(options, process); });
}

// dp_lm: a character-level transformer language model on Debian's fortune cookies, trained with DP-SGD
// from scratch, or pretrained without privacy on the public categories and fine-tuned with DP on the
// private ones (full, bias-only as in DP-BiTFiT, or last layer only); non-private baselines of each.
#include <malloc.h>
#include <sys/resource.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "command_line.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/stop_signal.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/micro_batches.hpp"
#include "eval_history.hpp"
#include "fortunes.hpp"
#include "language_model.hpp"
#include "output_checks.hpp"
#include "run_outcome.hpp"
#include "step_driver.hpp"
#include "training_process.hpp"

namespace {

using dp_lm::LanguageModel;
using dpsgd::nn::Trainable;
using dpsgd_example::EvalPoint;
using dpsgd_example::history_from_json;
using dpsgd_example::history_to_json;

// The settings that define a run (with the data, q, capacity and sigma): a resume with others is refused.
struct Settings {
  std::string mode = "scratch", trainable = "all", pretrained;
  double batch_size = 256, learning_rate = 2e-3, clip_norm = 1.0, epsilon = 3.0, delta = 1e-5;
  bool no_privacy = false;
  std::int64_t context = 128, d_model = 64, layers = 2, heads = 4, train_subset = 0;
  std::string data_dir = "/usr/share/games/fortunes";

  nlohmann::json to_json() const {
    return {{"mode", mode},
            {"trainable", trainable},
            {"pretrained", pretrained},
            {"batch_size", batch_size},
            {"learning_rate", learning_rate},
            {"clip_norm", clip_norm},
            {"epsilon", epsilon},
            {"delta", delta},
            {"no_privacy", no_privacy},
            {"context", context},
            {"d_model", d_model},
            {"layers", layers},
            {"heads", heads},
            {"train_subset", train_subset},
            {"data_dir", data_dir}};
  }
  dpsgd::nn::DecoderLMConfig model_config() const {
    return {.vocab_size = dp_lm::kVocabularySize,
            .context = context,
            .d_model = d_model,
            .heads = heads,
            .layers = layers,
            .mlp_hidden = 4 * d_model};
  }
  Trainable trainable_parts() const {
    static const std::map<std::string, Trainable> kinds = {
        {"all", Trainable::kAll}, {"bias", Trainable::kBiasOnly}, {"last", Trainable::kLastLayer}};
    return kinds.at(trainable);
  }
};

struct Options {
  Settings s;
  double epochs = 10;
  std::int64_t micro_batch = 64, test_subset = 0, checkpoint_every = 50;
  std::string metrics_out, plot_path, run_dir, save_model;
  std::optional<std::uint64_t> seed;
  std::optional<double> sigma;
  bool resume = false, distributed = false;
};

std::optional<int> parse_options(int argc, char** argv, Options& o) {
  CLI::App app{"Train a character-level transformer on fortune cookies with DP-SGD"};
  Settings& s = o.s;
  app.add_option("--mode", s.mode,
                 "scratch (DP on the private cookies), pretrain (non-private on the public ones) or finetune "
                 "(DP on the private cookies from --pretrained)")
      ->check(CLI::IsMember({"scratch", "pretrain", "finetune"}));
  app.add_option("--trainable", s.trainable, "what trains: all, bias (DP-BiTFiT) or last (the output layer)")
      ->check(CLI::IsMember({"all", "bias", "last"}));
  app.add_option("--pretrained", s.pretrained, "model file of a pretrain run (--save-model), for --mode finetune");
  app.add_option("--save-model", o.save_model, "write the final model to this file");
  app.add_option("--data-dir", s.data_dir, "directory of the fortune category files");
  app.add_option("--epsilon", s.epsilon, "privacy budget (default 3)")->check(CLI::PositiveNumber);
  app.add_option("--delta", s.delta, "delta (default 1e-5, below 1/N)")->check(CLI::Range(1e-300, 0.999999));
  app.add_option("--noise-multiplier", o.sigma, "use this sigma and report its epsilon instead of calibrating")
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs, "passes over the data")->check(CLI::Range(0.001, 10000.0));
  app.add_option("--batch-size", s.batch_size, "expected batch size q N (a logical batch)")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--micro-batch", o.micro_batch,
                 "slots per forward/backward pass; their clipped sums add up to the logical batch")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  app.add_option("--learning-rate", s.learning_rate, "Adam's learning rate")->check(CLI::PositiveNumber);
  app.add_option("--clip-norm", s.clip_norm, "per-sequence clip norm C")->check(CLI::PositiveNumber);
  app.add_flag("--no-privacy", s.no_privacy, "train without clipping or noise (baselines)");
  app.add_option("--context", s.context, "characters per sequence (longer cookies are cut)")
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{4096}));
  app.add_option("--d-model", s.d_model, "model width")->check(CLI::Range(std::int64_t{4}, std::int64_t{4096}));
  app.add_option("--layers", s.layers, "transformer blocks")->check(CLI::Range(std::int64_t{1}, std::int64_t{64}));
  app.add_option("--heads", s.heads, "attention heads (divide --d-model)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{64}));
  app.add_option("--seed", o.seed, "explicit seed: reproducible, NOT for a released model (default: OS CSPRNG)");
  app.add_option("--train-subset", s.train_subset, "use only the first N training cookies (smoke tests)")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{1} << 30));
  app.add_option("--test-subset", o.test_subset, "evaluate on the first N held-out cookies")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{1} << 30));
  app.add_option("--metrics-out", o.metrics_out, "write final metrics as JSON");
  app.add_option("--plot", o.plot_path, "write held-out loss and epsilon against steps as an SVG file");
  app.add_option("--run-dir", o.run_dir, "the run's directory (default: a new one under runs/)");
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")->check(CLI::PositiveNumber);
  app.add_flag("--resume", o.resume, "continue the run in --run-dir (or start it there if it holds none)");
  app.add_flag("--distributed", o.distributed,
               "data-parallel under mpirun: every rank clips its share of each batch, rank 0 writes the run "
               "(builds with MPI only; see docs/distributed.md)");
  if (const auto status = dpsgd_example::parse_training_command_line(app, argc, argv, o.resume, o.run_dir))
    return status;
  if ((s.mode == "finetune") != !s.pretrained.empty()) {
    std::cerr << "error: --pretrained is needed by --mode finetune and only by it\n";
    return 2;
  }
  if (s.trainable != "all" && s.mode != "finetune") {
    std::cerr << "error: --trainable " << s.trainable << " needs --mode finetune (a model trained from scratch "
              << "trains all of it)\n";
    return 2;
  }
  if (s.d_model % s.heads != 0) {
    std::cerr << "error: --heads " << s.heads << " must divide --d-model " << s.d_model << "\n";
    return 2;
  }
  if (s.mode == "pretrain") s.no_privacy = true;  // public data: nothing to protect
  return std::nullopt;
}

// The cookies a mode trains on: the public part for pretraining, the private part otherwise.
std::vector<std::string> training_cookies(const Settings& s, dp_lm::Corpus& corpus) {
  std::vector<std::string> cookies =
      s.mode == "pretrain" ? std::move(corpus.public_train) : std::move(corpus.private_train);
  if (s.train_subset > 0 && s.train_subset < static_cast<std::int64_t>(cookies.size()))
    cookies.resize(static_cast<std::size_t>(s.train_subset));
  return cookies;
}

dpsgd::TrainingRunConfig run_config(const Options& o, std::int64_t n) {
  if (o.s.batch_size > static_cast<double>(n))
    throw dpsgd::InvalidArgument("--batch-size must be <= the number of training cookies " + std::to_string(n));
  return dpsgd::plan_run({.directory = o.run_dir,
                          .resume = o.resume,
                          .dataset_size = n,
                          .expected_batch_size = o.s.batch_size,
                          .epochs = o.epochs,
                          .clip = dpsgd::ClipConfig::flat(o.s.clip_norm),
                          .epsilon = o.s.epsilon,
                          .delta = o.s.delta,
                          .noise_multiplier = o.sigma,
                          .no_privacy = o.s.no_privacy,
                          .settings = o.s.to_json(),
                          .seed = o.seed,
                          .release = std::nullopt});
}

double peak_memory_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// The training loop: logical batches from the run, cut into micro-batches whose clipped sums add up
// into one gradient; the run noises it once, charges it once and updates the trainable tensors.
class Trainer {
 public:
  Trainer(const Options& o, dpsgd_example::StepDriver& driver, LanguageModel& model,
          const std::vector<std::string>& train, const std::vector<std::string>& test)
      : o_(o), driver_(driver), run_(driver.run()), model_(model), train_(train), test_(test) {
    history_ = history_from_json(run_.restored_extra());
    gradient_.assign(static_cast<std::size_t>(model.num_parameters()), 0.0f);
    for (const dpsgd::nn::ParameterRange& r : model.trainable_ranges()) {
      params_.push_back(
          model.parameters().subspan(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.size)));
      grads_.push_back(
          std::span<float>(gradient_).subspan(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.size)));
    }
  }

  // Returns whether it stopped early. With several processes each clips its own slots of the batch.
  bool train(const dpsgd::StopSignal& stop) {
    const auto first_step = static_cast<std::int64_t>(run_.next_step());
    const auto start = std::chrono::steady_clock::now();
    if (history_.empty() && driver_.reports()) evaluate(first_step);
    bool stopped = false;
    while (!run_.finished() && !(stopped = driver_.stop_now(stop.requested()))) {
      const dpsgd::Batch batch = run_.next_batch();
      batch_gradient(dpsgd_example::slice_of(batch, driver_.slots(batch)));
      driver_.step(params_, grads_, batch);
      check_finite();
      const auto done = static_cast<std::int64_t>(run_.next_step());
      // Held-out evaluation and progress on the reporting process only; the others wait at the next step.
      if (driver_.reports() && (done % report_every() == 0 || run_.finished()))
        report_progress(done, first_step, start);
      if (done % o_.checkpoint_every == 0 || run_.finished()) checkpoint();
    }
    if (stopped) checkpoint();
    train_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    steps_taken_ = static_cast<std::int64_t>(run_.next_step()) - first_step;
    return stopped;
  }

  double epsilon() const {
    return o_.s.no_privacy ? std::numeric_limits<double>::infinity() : run_.epsilon(o_.s.delta);
  }
  double test_bits() { return model_.bits_per_character(test_, test_count()); }
  const std::vector<EvalPoint>& history() const { return history_; }
  double seconds_per_step() const {
    return steps_taken_ > 0 ? train_seconds_ / static_cast<double>(steps_taken_) : 0.0;
  }

 private:
  std::int64_t test_count() const {
    return o_.test_subset > 0 ? o_.test_subset : static_cast<std::int64_t>(test_.size());
  }
  std::int64_t report_every() const {
    return std::max<std::int64_t>(1, std::llround(0.25 / run_.config().sampling_rate));
  }

  // Every micro-batch is processed, padding ones too: the step's time must not depend on the realised
  // batch size (private).
  void batch_gradient(const dpsgd::Batch& batch) {
    std::fill(gradient_.begin(), gradient_.end(), 0.0f);
    const dpsgd::ClipConfig* clip = o_.s.no_privacy ? nullptr : &run_.config().clip;
    std::vector<const std::string*> cookies;
    for (const dpsgd::MicroBatch& part : dpsgd::micro_batches(batch, o_.micro_batch)) {
      cookies.clear();
      for (const std::int64_t index : part.indices)
        cookies.push_back(index == dpsgd::Batch::kPaddingIndex ? nullptr : &train_[static_cast<std::size_t>(index)]);
      dp_lm::encode(cookies, o_.s.context, sequences_);
      model_.add_batch_gradient(sequences_, part.mask, clip, gradient_);
    }
  }

  void check_finite() {
    for (const float v : model_.parameters()) {
      if (!std::isfinite(v))
        throw dpsgd::Error("the parameters became non-finite at step " + std::to_string(run_.next_step() - 1) +
                           " (learning rate too large?); the last checkpoint is kept");
    }
  }

  // Only public or held-out figures: the loss on held-out private-category cookies (never trained on)
  // and steps per second; never a loss or a size of the private batches.
  void report_progress(std::int64_t done, std::int64_t first_step, std::chrono::steady_clock::time_point start) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(done - first_step) / elapsed;
    evaluate(done);
    char spent[32] = "no privacy";
    if (!o_.s.no_privacy) std::snprintf(spent, sizeof(spent), "epsilon %6.3f", epsilon());
    std::printf("  epoch %6.2f  step %5lld/%lld  held-out %.4f bits/char  %5.2f steps/s  %s  %5.0fs left\n",
                static_cast<double>(done) * run_.config().sampling_rate, static_cast<long long>(done),
                static_cast<long long>(run_.planned_steps()), history_.back().value, rate, spent,
                static_cast<double>(run_.planned_steps() - done) / rate);
    std::fflush(stdout);
  }

  // Progress evaluates on a fixed 200 held-out cookies (cheap); the final figure on all of them.
  void evaluate(std::int64_t done) {
    history_.push_back({done, model_.bits_per_character(test_, std::min<std::int64_t>(200, test_count())), epsilon()});
  }

  void checkpoint() { driver_.checkpoint(model_.parameters(), history_to_json(history_)); }

  const Options& o_;
  dpsgd_example::StepDriver& driver_;
  const dpsgd::TrainingRun& run_;
  LanguageModel& model_;
  const std::vector<std::string>& train_;
  const std::vector<std::string>& test_;
  std::vector<EvalPoint> history_;
  std::vector<float> gradient_;
  std::vector<std::span<float>> params_, grads_;
  dp_lm::Sequences sequences_;
  double train_seconds_ = 0.0;
  std::int64_t steps_taken_ = 0;
};

void print_start(const Options& o, const dpsgd::TrainingRun& run, const LanguageModel& model,
                 std::size_t test_cookies) {
  const dpsgd::DpSgdConfig& c = run.config();
  std::printf("dp_lm: mode %s (trainable %s), %lld parameters (%lld trainable), N=%lld cookies, %zu held out\n",
              o.s.mode.c_str(), o.s.trainable.c_str(), static_cast<long long>(model.num_parameters()),
              static_cast<long long>(model.num_trainable()), static_cast<long long>(run.sampler().dataset_size()),
              test_cookies);
  std::printf("  q=%.5f, capacity %lld in micro-batches of %lld, %lld steps, sigma=%.4f, C=%g%s\n", c.sampling_rate,
              static_cast<long long>(run.sampler().capacity()), static_cast<long long>(o.micro_batch),
              static_cast<long long>(run.planned_steps()), c.noise_multiplier, o.s.clip_norm,
              o.s.no_privacy ? " (no privacy)" : "");
  dpsgd_example::print_run_state(run, o.seed.has_value());
}

void write_outputs(const Options& o, Trainer& trainer, double bits, double epsilon, const dpsgd::TrainingRun& run,
                   double seconds) {
  if (!o.metrics_out.empty()) {
    const nlohmann::json metrics = {
        {"test_bits_per_char", bits},
        {"epsilon", std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr)},
        {"delta", o.s.delta},
        {"steps", run.next_step()},
        {"noise_multiplier", run.config().noise_multiplier},
        {"capacity", run.sampler().capacity()},
        {"seconds", seconds},
        {"seconds_per_step", trainer.seconds_per_step()},
        {"peak_memory_mb", peak_memory_mb()},
        {"settings", o.s.to_json()},
        {"epochs", o.epochs},
        {"run_dir", run.directory()}};
    dpsgd::write_file_atomically(o.metrics_out, metrics.dump(2) + "\n");
  }
  if (!o.plot_path.empty()) {
    dpsgd::write_file_atomically(
        o.plot_path,
        dpsgd_example::history_plot(trainer.history(), "Held-out bits per character (200 cookies)", o.s.delta));
  }
}

// The model: from the pretrained file (fine-tuning), from the checkpoint (a resume), else initialised.
void prepare_model(const Options& o, const dpsgd::TrainingRun& run, LanguageModel& model) {
  if (!o.s.pretrained.empty()) model.load(o.s.pretrained);
  if (!run.restored_parameters().empty()) {
    if (static_cast<std::int64_t>(run.restored_parameters().size()) != model.num_parameters())
      throw dpsgd::FormatError("checkpoint refused: its parameter count differs from the model's");
    std::copy(run.restored_parameters().begin(), run.restored_parameters().end(), model.parameters().begin());
  }
  model.set_trainable(o.s.trainable_parts());
}

// Training and its report, the same for one process and for the ranks of a distributed run.
int train_and_report(const Options& o, dpsgd_example::StepDriver& driver, const dp_lm::Corpus& corpus,
                     const std::vector<std::string>& train, std::chrono::steady_clock::time_point start) {
  const dpsgd::TrainingRun& run = driver.run();
  LanguageModel model(o.s.model_config(), run.initialisation_seed());
  prepare_model(o, run, model);
  if (driver.reports()) print_start(o, run, model, corpus.private_test.size());

  const dpsgd::StopSignal stop;
  Trainer trainer(o, driver, model, train, corpus.private_test);
  if (trainer.train(stop)) return dpsgd_example::report_stop(stop, run, trainer.epsilon());
  if (!driver.reports()) return 0;
  const double bits = trainer.test_bits();
  const double epsilon = trainer.epsilon();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!o.save_model.empty()) model.save(o.save_model);
  std::printf("test bits per character: %.4f (held-out private-category cookies)\n", bits);
  std::printf("epsilon: %.4f at delta = %g (PLD, add/remove adjacency of one cookie, %llu steps)%s\n", epsilon,
              o.s.delta, static_cast<unsigned long long>(run.next_step()),
              o.s.mode == "pretrain" ? " -- public data only, no privacy claimed" : "");
  std::printf("time: %.1f s (%.3f s/step), peak memory %.0f MB\n", seconds, trainer.seconds_per_step(),
              peak_memory_mb());
  write_outputs(o, trainer, bits, epsilon, run, seconds);
  return 0;
}

int run_main(Options& o, const dpsgd_example::TrainingProcess& process) {
  const auto start = std::chrono::steady_clock::now();
  dp_lm::Corpus corpus = dp_lm::read_corpus(o.s.data_dir);
  const std::vector<std::string> train = training_cookies(o.s, corpus);
  // A pretrained file that does not fit is refused before the run's files are created.
  if (!o.s.pretrained.empty()) LanguageModel(o.s.model_config(), 0).load(o.s.pretrained);
  return process.run_training(
      [&] { return run_config(o, static_cast<std::int64_t>(train.size())); },
      std::make_unique<dpsgd::Adam<float>>(o.s.learning_rate),
      [&](dpsgd_example::StepDriver& driver) { return train_and_report(o, driver, corpus, train, start); });
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // keep the step's large buffers mapped between steps (as fashion_mnist)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  Options options;
  if (const auto status = parse_options(argc, argv, options)) return *status;
  const dpsgd_example::TrainingProcess process(options.distributed, argc, argv);
  if (options.run_dir.empty()) options.run_dir = dpsgd::TrainingRun::fresh_directory("runs", "dp_lm");
  // Checked before anything is created, where the run's files are (rank 0), and agreed by all ranks.
  if (!process.agreed(!process.reports() || dpsgd_example::outputs_usable({{"--metrics-out", options.metrics_out},
                                                                           {"--plot", options.plot_path},
                                                                           {"--save-model", options.save_model}},
                                                                          options.run_dir, options.resume)))
    return 2;
  return dpsgd_example::run_reporting_errors([&] { return run_main(options, process); });
}

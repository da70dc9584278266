// TrainingRun: a run's files (definition, ledger, secret seed, checkpoint) and the checks that tie them.
#include "dpsgd/optim/training_run.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/checksum.hpp"
#include "dpsgd/core/detail/vector_ops.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"
#include "dpsgd/noise/secure_seed.hpp"
#include "dpsgd/optim/checkpoint.hpp"

namespace dpsgd {
namespace {

namespace fs = std::filesystem;
using Start = TrainingRunConfig::Start;

constexpr const char* kFormat = "dpsgd.training_run";
constexpr const char* kPlannedSteps = "planned_steps";
constexpr const char* kRunId = "run_id";
// The files a run writes through temporary files (write_file_atomically names them <file>.tmp.XXXXXX).
constexpr const char* kReplacedFiles[] = {"checkpoint.json", "ledger.json", "run.json", "release.json"};

// Everything that defines the mechanism and the caller's settings: what a resume must match.
nlohmann::json definition_of(const TrainingRunConfig& c) {
  nlohmann::json definition = {
      {"format", kFormat},      {"dataset_size", c.dataset_size},         {"sampling_rate", c.sampling_rate},
      {"capacity", c.capacity}, {"noise_multiplier", c.noise_multiplier}, {"clip_sensitivity", c.clip.sensitivity()},
      {"settings", c.settings}};
  if (c.release) definition["release"] = c.release->to_json();   // absent: runs without one read as before
  if (c.schedule.kind != LearningRateSchedule::Kind::kConstant)  // likewise
    definition["learning_rate_schedule"] = {{"kind", c.schedule.name()}, {"final_factor", c.schedule.final_factor}};
  return definition;
}

std::string run_file_text(const nlohmann::json& definition, std::int64_t planned_steps) {
  nlohmann::json run = definition;
  run[kPlannedSteps] = planned_steps;
  return run.dump(2) + "\n";
}

void validate(const TrainingRunConfig& c) {
  DPSGD_CHECK_ARG(!c.directory.empty(), "directory must not be empty");
  DPSGD_CHECK_ARG(c.start == Start::kNew || c.start == Start::kResume || c.start == Start::kResumeOrNew,
                  "start must be kNew, kResume or kResumeOrNew, got " << static_cast<int>(c.start));
  DPSGD_CHECK_ARG(c.dataset_size >= 1, "dataset_size must be >= 1, got " << c.dataset_size);
  validate_sampling_rate(c.sampling_rate);
  DPSGD_CHECK_ARG(c.capacity >= 1 && c.capacity <= c.dataset_size,
                  "capacity must be in [1, dataset_size = " << c.dataset_size << "], got " << c.capacity);
  validate_noise_multiplier(c.noise_multiplier);
  c.clip.validate();
  DPSGD_CHECK_ARG(c.steps >= 1, "steps must be >= 1, got " << c.steps);
  if (c.release) c.release->validate();
  c.schedule.validate();
}

constexpr const char* kReleaseFormat = "dpsgd.sum_release";

std::string release_file_text(const std::vector<double>& values) {
  nlohmann::json payload = {{"format", kReleaseFormat}, {"values", values}};
  nlohmann::json document = payload;
  document["checksum"] = fnv1a64_checksum(payload.dump());
  return document.dump() + "\n";
}

std::vector<double> read_release_file(const std::string& path, std::int64_t dimension) {
  const nlohmann::json document = nlohmann::json::parse(read_file(path), nullptr, false);
  const auto refused = [&](const std::string& why) { return FormatError("dpsgd: " + path + " refused: " + why); };
  if (!document.is_object() || document.value("format", "") != kReleaseFormat || !document.contains("checksum") ||
      !document.contains("values") || !document["values"].is_array())
    throw refused("not a release file");
  nlohmann::json payload = document;
  payload.erase("checksum");
  if (document["checksum"] != fnv1a64_checksum(payload.dump()))
    throw refused("the checksum does not match the content (edited or corrupt)");
  std::vector<double> values;
  for (const auto& v : document["values"]) {
    if (!v.is_number()) throw refused("a value is not a number");
    values.push_back(v.get<double>());
  }
  if (static_cast<std::int64_t>(values.size()) != dimension)
    throw refused("it holds " + std::to_string(values.size()) + " values, the run's release " +
                  std::to_string(dimension));
  return values;
}

// The keys whose values differ between a stored definition and this program's, for the refusal; the
// caller's settings are compared key by key ("settings.learning_rate was 4.0, now 1.0").
std::string differences(const nlohmann::json& stored, const nlohmann::json& wanted) {
  if (!stored.is_object()) return "run.json is not a run definition";
  std::string out;
  const auto compare = [&](const nlohmann::json& was, const nlohmann::json& now, const std::string& prefix) {
    const auto describe = [&](const std::string& key, const nlohmann::json* a, const nlohmann::json* b) {
      out += (out.empty() ? "" : "; ") + prefix + key + " was " + (a ? a->dump() : "absent") + ", now " +
             (b ? b->dump() : "absent");
    };
    const auto nested = [&](const std::string& key) { return prefix.empty() && key == "settings"; };
    for (const auto& [key, value] : was.items()) {
      const auto other = now.find(key);
      if (!nested(key) && (other == now.end() || *other != value))
        describe(key, &value, other == now.end() ? nullptr : &*other);
    }
    for (const auto& [key, value] : now.items())
      if (!nested(key) && !was.contains(key)) describe(key, nullptr, &value);
  };
  const nlohmann::json none = nlohmann::json::object();
  const auto settings_of = [&](const nlohmann::json& d) -> const nlohmann::json& {
    const auto it = d.find("settings");
    return it != d.end() && it->is_object() ? *it : none;
  };
  compare(stored, wanted, "");
  compare(settings_of(stored), settings_of(wanted), "settings.");
  return out;
}

// A 64-bit mix (the splitmix64 finaliser) so that the model's initialisation seed is not one of the
// seeds the sampler or the noise use.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A random 128-bit name, independent of the seed (a run with an explicit seed still gets its own).
std::string new_run_id() {
  char text[33];
  std::snprintf(text, sizeof(text), "%016llx%016llx", static_cast<unsigned long long>(secure_random_seed()),
                static_cast<unsigned long long>(secure_random_seed()));
  return text;
}

fs::path normalised(const std::string& directory) {
  fs::path dir = fs::path(directory).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "runs/a/" names "runs/a"
  return dir;
}

bool holds_run(const fs::path& dir) { return fs::exists(dir / "run.json"); }

// Temporary files a killed process left while replacing one of the run's files. Only the process
// holding the lock writes them, so any found now are stale.
void remove_stale_temporaries(const fs::path& dir) {
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(dir, ignored)) {
    const std::string name = entry.path().filename().string();
    for (const char* replaced : kReplacedFiles) {
      if (name.rfind(std::string(replaced) + ".tmp.", 0) == 0 && entry.is_regular_file(ignored))
        fs::remove(entry.path(), ignored);
    }
  }
}

}  // namespace

std::optional<nlohmann::json> TrainingRun::definition_in(const std::string& directory) {
  const fs::path run = normalised(directory) / "run.json";
  if (!fs::exists(run)) return std::nullopt;
  nlohmann::json definition = nlohmann::json::parse(read_file(run.string()), nullptr, false);
  if (!definition.is_object() || definition.value("format", "") != kFormat)
    throw FormatError("dpsgd: " + run.string() + " is not a dpsgd training run's definition");
  return definition;
}

std::string TrainingRun::fresh_directory(const std::string& parent, const std::string& name) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &utc);
  const std::string base = (fs::path(parent) / (name + "-" + stamp)).string();
  std::string dir = base;
  for (int k = 2; fs::exists(dir); ++k) dir = base + "-" + std::to_string(k);
  return dir;
}

std::string TrainingRun::file(const char* name) const { return (fs::path(config_.directory) / name).string(); }

TrainingRun::TrainingRun(TrainingRunConfig config, std::unique_ptr<Optimizer<float>> optimizer)
    : config_(std::move(config)) {
  validate(config_);
  DPSGD_CHECK_ARG(optimizer != nullptr, "optimizer must not be null");
  config_.directory = normalised(config_.directory).string();
  definition_ = definition_of(config_);
  resumed_ = config_.start == Start::kResume || (config_.start == Start::kResumeOrNew && holds_run(config_.directory));
  if (resumed_) {
    open_existing();
  } else {
    create();
  }
  start_stepping(std::move(optimizer));
  if (resumed_) restore_checkpoint();
}

// The sampler and the step driver, from the seed: every batch and noise vector follows from (seed, step).
void TrainingRun::start_stepping(std::unique_ptr<Optimizer<float>> optimizer) {
  initialisation_seed_ = mix(seed_);
  sampler_.emplace(config_.dataset_size, config_.sampling_rate, config_.capacity, seed_ + 2);
  dp_ = std::make_unique<DpSgd<float>>(DpSgdConfig::for_sampler(*sampler_, config_.noise_multiplier, config_.clip),
                                       std::move(optimizer), seed_ + 1, &ledger_);
}

nlohmann::json TrainingRun::replica_state() const {
  DPSGD_CHECK_ARG(!replica_, "replica_state: ask the run that owns the files, not a replica");
  return {{"definition", definition_},
          {"planned_steps", config_.steps},
          {"seed", seed_},
          {"next_step", dp_->next_step()},
          {"ledger", ledger_.to_json()},
          {"optimizer", dp_->optimizer().state()},
          {"extra", restored_extra_},
          {"resumed", resumed_},
          {"notes", notes_}};
}

std::unique_ptr<TrainingRun> TrainingRun::replica(TrainingRunConfig config, const nlohmann::json& state,
                                                  std::vector<float> restored_parameters,
                                                  std::unique_ptr<Optimizer<float>> optimizer) {
  return std::unique_ptr<TrainingRun>(
      new TrainingRun(ReplicaTag{}, std::move(config), state, std::move(restored_parameters), std::move(optimizer)));
}

TrainingRun::TrainingRun(ReplicaTag, TrainingRunConfig config, const nlohmann::json& state,
                         std::vector<float> parameters, std::unique_ptr<Optimizer<float>> optimizer)
    : config_(std::move(config)), replica_(true) {
  validate(config_);
  DPSGD_CHECK_ARG(optimizer != nullptr, "optimizer must not be null");
  DPSGD_CHECK_ARG(state.is_object() && state.contains("definition") && state.contains("seed") &&
                      state.contains("next_step") && state.contains("ledger"),
                  "replica state is not one TrainingRun::replica_state() wrote");
  definition_ = definition_of(config_);
  nlohmann::json stored = state.at("definition");
  if (stored.is_object() && stored.contains(kRunId)) definition_[kRunId] = stored[kRunId];
  if (stored != definition_) {
    throw InvalidArgument("dpsgd::TrainingRun: a replica must be opened with the writer's mechanism and settings: " +
                          differences(stored, definition_));
  }
  config_.steps = state.value("planned_steps", config_.steps);
  seed_ = state.at("seed").get<std::uint64_t>();
  resumed_ = state.value("resumed", false);
  notes_ = state.value("notes", std::vector<std::string>{});
  ledger_ = PrivacyLedger::from_json(state.at("ledger"));  // in memory: the writer persists
  start_stepping(std::move(optimizer));
  if (state.contains("optimizer")) dp_->optimizer().set_state(state.at("optimizer"));
  restored_parameters_ = std::move(parameters);
  restored_extra_ = state.value("extra", nlohmann::json::object());
  const std::uint64_t next = state.at("next_step").get<std::uint64_t>();
  if (next > 0) dp_->resume_at(next);
}

// A new run's files are written into a hidden sibling directory and renamed into place together:
// a process killed while creating them leaves no half-made run behind, and the rename refuses a
// directory that is not empty, so no existing file is ever replaced.
void TrainingRun::create() {
  const fs::path dir = config_.directory;
  if (fs::exists(dir) && !(fs::is_directory(dir) && fs::is_empty(dir))) {
    throw FileExists("dpsgd::TrainingRun: " + dir.string() +
                     (holds_run(dir) ? " holds a run: resume it, or choose another directory for a new one"
                                     : " exists and is not an empty directory") +
                     " (nothing was changed)");
  }
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  fs::create_directories(parent);
  std::string pattern = (parent / ("." + dir.filename().string() + ".new-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw IoError("dpsgd::TrainingRun: cannot create a directory beside " + dir.string() + ": " + std::strerror(errno));
  const fs::path staging = pattern;
  try {
    definition_[kRunId] = new_run_id();  // names this run in every checkpoint it writes
    create_file_atomically((staging / "run.json").string(), run_file_text(definition_, config_.steps));
    seed_ = config_.seed ? *config_.seed : secure_random_seed();
    create_seed_file((staging / "seed").string(), seed_);
    PrivacyLedger().save((staging / "ledger.json").string());
    if (::rename(staging.c_str(), dir.c_str()) != 0) {
      const int error = errno;
      if (error == ENOTEMPTY || error == EEXIST)
        throw FileExists("dpsgd::TrainingRun: " + dir.string() +
                         " appeared meanwhile (another process?); nothing was changed");
      throw IoError("dpsgd::TrainingRun: cannot create " + dir.string() + ": " + std::strerror(error));
    }
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }
  sync_directory(parent.string());
  ledger_ = PrivacyLedger::open(file("ledger.json"));  // locked from now on
}

void TrainingRun::open_existing() {
  if (!holds_run(config_.directory)) {
    throw IoError("dpsgd::TrainingRun: no run to resume in " + config_.directory +
                  " (no run.json); start a new run there instead");
  }
  ledger_ = PrivacyLedger::open(file("ledger.json"));  // locked: a second process stops here
  remove_stale_temporaries(config_.directory);
  nlohmann::json stored = nlohmann::json::parse(read_file(file("run.json")), nullptr, false);
  std::int64_t planned = 0;
  if (stored.is_object() && stored.contains(kPlannedSteps) && stored[kPlannedSteps].is_number_integer()) {
    planned = stored[kPlannedSteps].get<std::int64_t>();
    stored.erase(kPlannedSteps);
  }
  if (stored.is_object() && stored.contains(kRunId)) definition_[kRunId] = stored[kRunId];
  if (stored != definition_) {
    throw InvalidArgument("dpsgd::TrainingRun: the run in " + config_.directory +
                          " was defined otherwise, and a resume must not change the mechanism or settings: " +
                          differences(stored, definition_));
  }
  seed_ = read_seed_file(file("seed"));
  if (config_.seed && *config_.seed != seed_)
    throw InvalidArgument("dpsgd::TrainingRun: seed differs from the seed of the run being resumed");
  if (planned != config_.steps) {
    write_file_atomically(file("run.json"), run_file_text(definition_, config_.steps));
    notes_.push_back("the run was planned for " + std::to_string(planned) + " steps and now for " +
                     std::to_string(config_.steps) +
                     ": only its length changed (the mechanism is the same; every step taken is charged)");
  }
}

void TrainingRun::restore_checkpoint() {
  std::uint64_t next = ledger_.next_step();
  if (fs::exists(file("checkpoint.json"))) {
    TrainingCheckpoint saved = load_checkpoint(file("checkpoint.json"));
    if (saved.format != kFormat || saved.settings != definition_)
      throw FormatError("dpsgd: checkpoint " + file("checkpoint.json") + " refused: it belongs to another run");
    if (!ledger_.continues(saved.ledger)) {
      throw FormatError("dpsgd: checkpoint " + file("checkpoint.json") +
                        " refused: the ledger does not continue the history it saw");
    }
    dp_->optimizer().set_state(saved.optimizer_state);
    restored_parameters_ = std::move(saved.params);
    restored_extra_ = std::move(saved.extra);
    if (next > saved.next_step) {
      const bool one = next - saved.next_step == 1;
      const std::string lost =
          one ? "step " + std::to_string(saved.next_step) + " was"
              : "steps " + std::to_string(saved.next_step) + " to " + std::to_string(next - 1) + " were";
      notes_.push_back(lost + " charged after the last checkpoint: " + (one ? "its update is" : "their updates are") +
                       " lost, the charge stays, and training continues from the checkpoint's parameters at step " +
                       std::to_string(next));
    }
    next = std::max(next, saved.next_step);
  } else if (next > 0) {
    notes_.push_back(std::to_string(ledger_.steps()) +
                     " steps were charged before any checkpoint: they stay charged, and training restarts from "
                     "fresh parameters at step " +
                     std::to_string(next));
  }
  // Steps charged after the last checkpoint (or with none) stay charged and are never taken again.
  if (next > 0) dp_->resume_at(next);
}

std::vector<double> TrainingRun::release_sum(const RowSource& row) {
  DPSGD_CHECK_ARG(config_.release.has_value(), "release_sum: the run's config holds no release");
  DPSGD_CHECK_ARG(!replica_, "release_sum: a replica owns no files; the writer process releases");
  const SumRelease& release = *config_.release;
  const std::string path = file("release.json");
  if (fs::exists(path)) return read_release_file(path, release.dimension);
  if (!ledger_.releases().empty()) {
    throw Error("dpsgd::TrainingRun: the ledger in " + config_.directory +
                " charged the release, but release.json is gone; it cannot be made again without reusing its "
                "noise: start a new run");
  }
  // The clipped sum first (bad rows are refused before anything is charged), then the charge
  // (write-ahead), then the noise from the stream the ledger hands out, from the noise seed at the one
  // step index DpSgd never uses; only then does anything leave this function.
  std::vector<double> values = clipped_sum(release, config_.dataset_size, row);
  const std::uint32_t stream = ledger_.record_release(release.noise_multiplier);
  const NoiseKey key(dp_->noise_seed(), std::numeric_limits<std::uint64_t>::max(), stream);
  add_gaussian_noise<double>(values, release.noise_multiplier * release.clip_norm, key);
  create_file_atomically(path, release_file_text(values));
  return values;
}

void TrainingRun::step(std::span<float> params, std::span<float> gradient, const Batch& batch) {
  schedule_learning_rate();
  dp_->step(params, gradient, batch);
}

void TrainingRun::step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients,
                       const Batch& batch) {
  schedule_learning_rate();
  dp_->step(params, gradients, batch);
}

void TrainingRun::schedule_learning_rate() {
  dp_->optimizer().set_learning_rate_factor(config_.schedule.factor(dp_->next_step(), config_.steps));
}

void TrainingRun::checkpoint(std::span<const float> params, const nlohmann::json& extra) {
  DPSGD_CHECK_ARG(!replica_, "checkpoint: a replica owns no files; the writer process saves the run");
  const std::size_t bad = detail::first_nonfinite<float>(params);
  DPSGD_CHECK_ARG(bad == params.size(), "params[" << bad << "] is " << params[bad]
                                                  << ": a non-finite model is not saved; the last checkpoint is kept");
  TrainingCheckpoint state;
  state.format = kFormat;
  state.settings = definition_;
  state.seed = 0;  // the seed lives in its own owner-only file
  state.next_step = dp_->next_step();
  state.params.assign(params.begin(), params.end());
  state.optimizer_state = dp_->optimizer().state();
  state.ledger = ledger_;
  state.extra = extra;
  save_checkpoint(file("checkpoint.json"), state);
}

}  // namespace dpsgd

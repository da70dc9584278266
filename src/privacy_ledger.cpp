// PrivacyLedger: run-length phases, JSON with an FNV-1a checksum, atomic persistence.
#include "dpsgd/accounting/privacy_ledger.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/checksum.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/json_fields.hpp"

namespace dpsgd {
namespace {

constexpr const char* kFormat = "dpsgd.privacy_ledger";
// Version 2 adds whole-data-set releases; a ledger without any is still written as version 1, and one
// with releases is refused by readers that know only version 1 (they would under-count).
constexpr int kVersion = 1;
constexpr int kVersionWithReleases = 2;

constexpr const char* kRefused = "dpsgd: privacy ledger refused: ";

[[noreturn]] void corrupt(const std::string& what) { throw FormatError(kRefused + what); }

// Equal mechanisms merge into one phase; a continuation must repeat them.
bool same_mechanism(const TrainingPhase& a, const TrainingPhase& b) {
  return a.sampling_rate == b.sampling_rate && a.noise_multiplier == b.noise_multiplier &&
         a.dataset_size == b.dataset_size && a.capacity == b.capacity;
}

std::string file_text(const PrivacyLedger& ledger) { return ledger.to_json().dump(2) + "\n"; }

}  // namespace

PrivacyLedger::PrivacyLedger(std::string persist_path) {
  DPSGD_CHECK_ARG(!persist_path.empty(), "persist_path must not be empty");
  persist_to(std::move(persist_path));
}

PrivacyLedger PrivacyLedger::open(const std::string& path) {
  DPSGD_CHECK_ARG(!path.empty(), "path must not be empty");
  // Lock first: a ledger another process is still writing is not read half-way.
  auto lock = std::make_shared<const FileLock>(path);
  PrivacyLedger ledger = load(path);
  ledger.lock_ = std::move(lock);
  ledger.persist_path_ = path;
  return ledger;
}

void PrivacyLedger::persist_to(std::string path) {
  DPSGD_CHECK_ARG(!path.empty(), "path must not be empty");
  if (persist_path_ && *persist_path_ == path) return;
  auto lock = std::make_shared<const FileLock>(path);
  // Claimed now, whole or not at all: an existing file (another run's ledger) is never replaced, and
  // an unwritable path fails before any step is taken.
  create_file_atomically(path, file_text(*this));
  persist_path_ = std::move(path);
  lock_ = std::move(lock);
}

const std::string& PrivacyLedger::persist_path() const {
  static const std::string kNone;
  return persist_path_ ? *persist_path_ : kNone;
}

void PrivacyLedger::record(const DpStepRecord& step) {
  DPSGD_CHECK_ARG(std::isfinite(step.sampling_rate) && step.sampling_rate > 0.0 && step.sampling_rate <= 1.0,
                  "step.sampling_rate must be in (0, 1], got " << step.sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(step.noise_multiplier) && step.noise_multiplier >= 0.0,
                  "step.noise_multiplier must be finite and >= 0, got " << step.noise_multiplier);
  DPSGD_CHECK_ARG(step.step >= next_step_, "step.step = " << step.step << " was already recorded (next is "
                                                          << next_step_ << "); reusing a step reuses its noise");
  DPSGD_CHECK_ARG(step.step < std::numeric_limits<std::uint64_t>::max(),
                  "step.step must be below 2^64 - 1 (the next index would wrap to 0), got " << step.step);
  DPSGD_CHECK_ARG((step.dataset_size == 0) == (step.capacity == 0) && step.dataset_size >= 0 && step.capacity >= 0,
                  "step.dataset_size and step.capacity must both be > 0 (truncation) or both 0, got "
                      << step.dataset_size << " and " << step.capacity);
  PrivacyLedger updated = *this;
  if (step.noise_multiplier == 0.0) {
    updated.unbounded_ = true;
  } else if (const TrainingPhase phase = step.as_phase();
             !updated.phases_.empty() && same_mechanism(updated.phases_.back(), phase)) {
    ++updated.phases_.back().steps;
  } else {
    updated.phases_.push_back(phase);
  }
  updated.next_step_ = step.step + 1;
  // Write-ahead: the step counts only once it is on disk; if saving throws, nothing changes.
  if (persist_path_) write_file_atomically(*persist_path_, file_text(updated));
  *this = std::move(updated);
}

std::uint32_t PrivacyLedger::record_release(double noise_multiplier) {
  DPSGD_CHECK_ARG(std::isfinite(noise_multiplier) && noise_multiplier > 0.0,
                  "noise_multiplier of a release must be finite and > 0, got " << noise_multiplier);
  DPSGD_CHECK_ARG(releases_.size() < std::numeric_limits<std::uint32_t>::max(),
                  "a ledger holds at most 2^32 - 1 releases");
  PrivacyLedger updated = *this;
  updated.releases_.push_back(noise_multiplier);
  if (persist_path_) write_file_atomically(*persist_path_, file_text(updated));
  *this = std::move(updated);
  return static_cast<std::uint32_t>(releases_.size() - 1);
}

std::vector<TrainingPhase> PrivacyLedger::charged() const {
  std::vector<TrainingPhase> all;
  all.reserve(releases_.size() + phases_.size());
  for (const double sigma : releases_) all.push_back(TrainingPhase{{1.0, sigma, 1}});
  all.insert(all.end(), phases_.begin(), phases_.end());
  return all;
}

bool PrivacyLedger::continues(const PrivacyLedger& earlier) const {
  if (next_step_ < earlier.next_step_ || (earlier.unbounded_ && !unbounded_)) return false;
  if (earlier.releases_.size() > releases_.size() ||
      !std::equal(earlier.releases_.begin(), earlier.releases_.end(), releases_.begin()))
    return false;
  if (earlier.phases_.size() > phases_.size()) return false;
  for (std::size_t k = 0; k < earlier.phases_.size(); ++k) {
    const TrainingPhase& before = earlier.phases_[k];
    const TrainingPhase& now = phases_[k];
    if (!same_mechanism(before, now)) return false;
    const bool last = k + 1 == earlier.phases_.size();
    if (last ? now.steps < before.steps : now.steps != before.steps) return false;
  }
  return true;
}

std::int64_t PrivacyLedger::steps() const {
  std::int64_t total = 0;
  for (const auto& phase : phases_) total += phase.steps;
  return total;
}

double PrivacyLedger::epsilon(double delta, const AccountantOptions& options) const {
  if (unbounded_) return std::numeric_limits<double>::infinity();
  if (phases_.empty() && releases_.empty()) return 0.0;
  return compute_epsilon(charged(), delta, options);
}

double PrivacyLedger::delta(double epsilon, const AccountantOptions& options) const {
  if (unbounded_) return 1.0;
  if (phases_.empty() && releases_.empty()) return 0.0;
  return compute_delta(charged(), epsilon, options);
}

nlohmann::json PrivacyLedger::to_json() const {
  nlohmann::json payload;
  payload["format"] = kFormat;
  payload["version"] = releases_.empty() ? kVersion : kVersionWithReleases;
  payload["next_step"] = next_step_;
  payload["unbounded"] = unbounded_;
  payload["phases"] = nlohmann::json::array();
  for (const auto& p : phases_) {
    payload["phases"].push_back({{"sampling_rate", p.sampling_rate},
                                 {"noise_multiplier", p.noise_multiplier},
                                 {"steps", p.steps},
                                 {"dataset_size", p.dataset_size},
                                 {"capacity", p.capacity}});
  }
  if (!releases_.empty()) payload["releases"] = releases_;
  nlohmann::json document = payload;
  document["checksum"] = fnv1a64_checksum(payload.dump());
  return document;
}

PrivacyLedger PrivacyLedger::from_json(const nlohmann::json& document) {
  const JsonFields fields(document, "the ledger", kRefused);
  if (fields.string("format") != kFormat) corrupt("\"format\" is not \"" + std::string(kFormat) + "\"");
  const std::int64_t version = fields.integer("version");
  if (version != kVersion && version != kVersionWithReleases)
    corrupt("version " + std::to_string(version) + " is not a supported version (1 or 2)");
  nlohmann::json payload = document;
  const std::string stored = fields.string("checksum");
  payload.erase("checksum");
  if (fnv1a64_checksum(payload.dump()) != stored)
    corrupt("the checksum does not match the content (edited or corrupt)");
  PrivacyLedger ledger;
  ledger.next_step_ = fields.unsigned_integer("next_step");
  ledger.unbounded_ = fields.boolean("unbounded");
  const nlohmann::json& phases = fields.array("phases");
  std::uint64_t counted = 0;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    const JsonFields phase(phases[k], "phases[" + std::to_string(k) + "]", kRefused);
    TrainingPhase p{phase.number("sampling_rate"), phase.number("noise_multiplier"), phase.integer("steps"),
                    phase.integer("dataset_size"), phase.integer("capacity")};
    try {
      validate_training_phase(p, k);
    } catch (const InvalidArgument& e) {
      corrupt("phases[" + std::to_string(k) + "] is out of range: " + e.what());
    }
    // Each phase holds at most next_step steps, so this sum cannot overflow before the check fires.
    counted += static_cast<std::uint64_t>(p.steps);
    if (counted > ledger.next_step_) corrupt("it holds more steps than its next_step allows");
    ledger.phases_.push_back(p);
  }
  if (version == kVersionWithReleases) {
    const nlohmann::json& releases = fields.array("releases");
    if (releases.empty()) corrupt("a version 2 ledger must hold at least one release");
    for (std::size_t k = 0; k < releases.size(); ++k) {
      const double sigma = releases[k].is_number() ? releases[k].get<double>() : -1.0;
      if (!(std::isfinite(sigma) && sigma > 0.0))
        corrupt("releases[" + std::to_string(k) + "] is not a noise multiplier > 0");
      ledger.releases_.push_back(sigma);
    }
  } else if (document.contains("releases")) {
    corrupt("a version 1 ledger holds no releases");
  }
  return ledger;
}

void PrivacyLedger::save(const std::string& path) const {
  DPSGD_CHECK_ARG(!path.empty(), "path must not be empty");
  const std::string text = file_text(*this);
  if (persist_path_ && *persist_path_ == path) {
    write_file_atomically(path, text);
  } else {
    create_file_atomically(path, text);
  }
}

PrivacyLedger PrivacyLedger::load(const std::string& path) {
  const std::string text = read_file(path);
  // Non-throwing parse: besides syntax errors, nlohmann throws out_of_range for numbers like 1e999
  // (found by fuzz/fuzz_ledger), and every failure must surface as FormatError.
  const nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (document.is_discarded()) corrupt(path + " is not valid JSON (truncated, or not a ledger)");
  try {
    return from_json(document);
  } catch (const FormatError& e) {
    throw FormatError(std::string(e.what()) + " [" + path + "]");
  }
}

}  // namespace dpsgd

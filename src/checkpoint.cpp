// TrainingCheckpoint: JSON with a checksum, written atomically, every field checked on load.
#include "dpsgd/optim/checkpoint.hpp"

#include <cmath>
#include <limits>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/checksum.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/json_fields.hpp"

namespace dpsgd {
namespace {

constexpr const char* kKind = "dpsgd.training_checkpoint";
constexpr std::int64_t kVersion = 1;

template <typename T>
std::vector<T> finite_numbers(const JsonFields& fields, const char* key) {
  const nlohmann::json& array = fields.array(key);
  std::vector<T> out;
  out.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const nlohmann::json& v = array[i];
    if (!v.is_number()) fields.fail(std::string("\"") + key + "\"[" + std::to_string(i) + "] is not a number");
    const double d = v.get<double>();
    // A double outside float's range would become inf when narrowed: refuse it here.
    if (!std::isfinite(d) || std::abs(d) > static_cast<double>(std::numeric_limits<T>::max()))
      fields.fail(std::string("\"") + key + "\"[" + std::to_string(i) + "] is not a finite value of the stored type");
    out.push_back(static_cast<T>(d));
  }
  return out;
}

}  // namespace

std::string checkpoint_to_string(const TrainingCheckpoint& c) {
  nlohmann::json payload = {{"kind", kKind},
                            {"version", kVersion},
                            {"format", c.format},
                            {"settings", c.settings},
                            {"seed", c.seed},
                            {"next_step", c.next_step},
                            {"params", c.params},
                            {"optimizer_state", c.optimizer_state},
                            {"ledger", c.ledger.to_json()},
                            {"extra", c.extra}};
  payload["checksum"] = fnv1a64_checksum(payload.dump());
  return payload.dump();
}

TrainingCheckpoint checkpoint_from_string(std::string_view text, const std::string& source) {
  const std::string prefix = "dpsgd: checkpoint " + source + " refused: ";
  nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (document.is_discarded()) throw FormatError(prefix + "not valid JSON (truncated or not a checkpoint)");
  const JsonFields fields(document, "the checkpoint", prefix);
  if (fields.string("kind") != kKind) fields.fail(std::string("\"kind\" is not \"") + kKind + "\"");
  const std::int64_t version = fields.integer("version");
  if (version != kVersion) fields.fail("version " + std::to_string(version) + " is not the supported version 1");
  const std::string stored = fields.string("checksum");
  nlohmann::json payload = document;
  payload.erase("checksum");
  if (fnv1a64_checksum(payload.dump()) != stored)
    fields.fail("the checksum does not match the content (truncated or edited)");

  TrainingCheckpoint c;
  c.format = fields.string("format");
  c.settings = fields.value("settings");
  c.seed = fields.unsigned_integer("seed");
  c.next_step = fields.unsigned_integer("next_step");
  c.params = finite_numbers<float>(fields, "params");
  c.optimizer_state = finite_numbers<double>(fields, "optimizer_state");
  try {
    c.ledger = PrivacyLedger::from_json(fields.value("ledger"));
  } catch (const FormatError& e) {
    fields.fail(std::string("its ledger: ") + e.what());
  }
  // Steps before next_step were applied to the parameters, so they must have been charged.
  if (c.next_step > c.ledger.next_step())
    fields.fail("next_step " + std::to_string(c.next_step) + " is beyond the steps its ledger charged (" +
                std::to_string(c.ledger.next_step()) + ")");
  c.extra = fields.value("extra");
  return c;
}

void save_checkpoint(const std::string& path, const TrainingCheckpoint& checkpoint) {
  DPSGD_CHECK_ARG(!path.empty(), "path must not be empty");
  write_file_atomically(path, checkpoint_to_string(checkpoint));
}

TrainingCheckpoint load_checkpoint(const std::string& path) {
  DPSGD_CHECK_ARG(!path.empty(), "path must not be empty");
  return checkpoint_from_string(read_file(path), path);
}

}  // namespace dpsgd

// Tests of TrainingCheckpoint: round trip, and refusal of truncated, edited and hand-made files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "dpsgd/core/checksum.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/checkpoint.hpp"

namespace dpsgd {
namespace {

TrainingCheckpoint sample_checkpoint() {
  TrainingCheckpoint c;
  c.format = "test.model";
  c.settings = {{"lr", 0.5}, {"epochs", 3}};
  c.seed = 18446744073709551557ULL;  // above 2^63: must survive as an unsigned integer
  c.params = {1.0f, -2.5f, 3.25e-8f};
  c.optimizer_state = {0.1, 0.2, 0.3};
  for (std::uint64_t step = 0; step < 7; ++step) c.ledger.record(DpStepRecord{step, 0.01, 1.1, 0, 0});
  c.next_step = 7;
  c.extra = {{"history", nlohmann::json::array({1, 2})}};
  return c;
}

// Re-signs an edited document, as a forger who knows the checksum scheme would: the loader must
// still refuse it on the fields themselves.
std::string resign(nlohmann::json document) {
  document.erase("checksum");
  document["checksum"] = fnv1a64_checksum(document.dump());
  return document.dump();
}

TEST(Checkpoint, RoundTripsEveryField) {
  const TrainingCheckpoint c = sample_checkpoint();
  const TrainingCheckpoint back = checkpoint_from_string(checkpoint_to_string(c));
  EXPECT_EQ(back.format, c.format);
  EXPECT_EQ(back.settings, c.settings);
  EXPECT_EQ(back.seed, c.seed);
  EXPECT_EQ(back.next_step, c.next_step);
  EXPECT_EQ(back.params, c.params);
  EXPECT_EQ(back.optimizer_state, c.optimizer_state);
  EXPECT_EQ(back.ledger.steps(), 7);
  EXPECT_EQ(back.ledger.next_step(), 7u);
  EXPECT_EQ(back.extra, c.extra);
}

TEST(Checkpoint, SavesAtomicallyAndLoads) {
  const auto path = (std::filesystem::temp_directory_path() / "dpsgd_checkpoint_test.json").string();
  save_checkpoint(path, sample_checkpoint());
  EXPECT_EQ(load_checkpoint(path).params, sample_checkpoint().params);
  std::filesystem::remove(path);
  EXPECT_THROW(load_checkpoint(path), IoError);
  EXPECT_THROW(load_checkpoint(""), InvalidArgument);
  EXPECT_THROW(save_checkpoint("", sample_checkpoint()), InvalidArgument);
}

TEST(Checkpoint, TruncatedOrEditedFilesAreRefused) {
  const std::string text = checkpoint_to_string(sample_checkpoint());
  for (const std::size_t keep : {std::size_t{0}, std::size_t{1}, text.size() / 2, text.size() - 1}) {
    EXPECT_THROW(checkpoint_from_string(text.substr(0, keep)), FormatError) << keep;
  }
  std::string edited = text;
  edited.replace(edited.find("-2.5"), 4, "-2.4");
  try {
    checkpoint_from_string(edited, "ckpt.json");
    FAIL() << "an edited checkpoint was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ckpt.json"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, ReSignedHandMadeFilesAreStillChecked) {
  const nlohmann::json good = nlohmann::json::parse(checkpoint_to_string(sample_checkpoint()));
  const auto refused = [&](const char* what, auto edit) {
    nlohmann::json document = good;
    edit(document);
    EXPECT_THROW(checkpoint_from_string(resign(document)), FormatError) << what;
  };
  refused("seed negative", [](nlohmann::json& d) { d["seed"] = -1; });
  refused("seed a float", [](nlohmann::json& d) { d["seed"] = 1.5; });
  refused("seed a string", [](nlohmann::json& d) { d["seed"] = "7"; });
  refused("param beyond float", [](nlohmann::json& d) { d["params"][1] = 1e39; });
  refused("param not a number", [](nlohmann::json& d) { d["params"][1] = nullptr; });
  refused("params not an array", [](nlohmann::json& d) { d["params"] = 3; });
  refused("version 2", [](nlohmann::json& d) { d["version"] = 2; });
  refused("version huge", [](nlohmann::json& d) { d["version"] = 1e300; });
  refused("kind", [](nlohmann::json& d) { d["kind"] = "something else"; });
  refused("missing ledger", [](nlohmann::json& d) { d.erase("ledger"); });
  refused("missing extra", [](nlohmann::json& d) { d.erase("extra"); });
  refused("next_step beyond the ledger", [](nlohmann::json& d) { d["next_step"] = 8; });
  refused("ledger edited", [](nlohmann::json& d) { d["ledger"]["next_step"] = 1000; });
  refused("ledger phase out of range (re-signed too)", [](nlohmann::json& d) {
    nlohmann::json ledger = d["ledger"];
    ledger["phases"][0]["sampling_rate"] = 2.0;
    d["ledger"] = nlohmann::json::parse(resign(ledger));
  });
  refused("ledger steps as a float (re-signed too)", [](nlohmann::json& d) {
    nlohmann::json ledger = d["ledger"];
    ledger["phases"][0]["steps"] = 1e300;
    d["ledger"] = nlohmann::json::parse(resign(ledger));
  });
  EXPECT_THROW(checkpoint_from_string("[1, 2]"), FormatError);
  EXPECT_THROW(checkpoint_from_string("null"), FormatError);
}

}  // namespace
}  // namespace dpsgd

// Tests of the persistent privacy ledger: recording, queries, atomic save/load, refusal of bad files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/checksum.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/dp_sgd.hpp"

namespace dpsgd {
namespace {

namespace fs = std::filesystem;

class LedgerFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dpsgd_ledger_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

PrivacyLedger three_phase_ledger() {
  PrivacyLedger ledger;
  for (std::uint64_t s = 0; s < 100; ++s) ledger.record({s, 0.01, 1.0, 0, 0});
  for (std::uint64_t s = 100; s < 150; ++s) ledger.record({s, 0.02, 1.2, 0, 0});
  for (std::uint64_t s = 150; s < 160; ++s) ledger.record({s, 0.02, 1.2, 5000, 200});
  return ledger;
}

DpSgdConfig small_config() {
  DpSgdConfig config;
  config.sampling_rate = 0.01;
  config.expected_batch_size = 10.0;
  return config;
}

TEST(PrivacyLedger, MergesEqualStepsIntoPhasesAndAnswersLikeTheAccountant) {
  const PrivacyLedger ledger = three_phase_ledger();
  ASSERT_EQ(ledger.phases().size(), 3u);
  EXPECT_EQ(ledger.phases()[0].steps, 100);
  EXPECT_EQ(ledger.phases()[1].steps, 50);
  EXPECT_EQ(ledger.phases()[2].capacity, 200);
  EXPECT_EQ(ledger.steps(), 160);
  EXPECT_EQ(ledger.next_step(), 160u);
  EXPECT_DOUBLE_EQ(ledger.epsilon(1e-5), compute_epsilon(ledger.phases(), 1e-5));
  EXPECT_EQ(PrivacyLedger().epsilon(1e-5), 0.0);
}

TEST(PrivacyLedger, RefusesReusedStepsAndBadRecords) {
  PrivacyLedger ledger;
  ledger.record({5, 0.01, 1.0, 0, 0});
  EXPECT_THROW(ledger.record({5, 0.01, 1.0, 0, 0}), InvalidArgument);
  EXPECT_THROW(ledger.record({3, 0.01, 1.0, 0, 0}), InvalidArgument);
  EXPECT_THROW(ledger.record({6, 0.0, 1.0, 0, 0}), InvalidArgument);
  EXPECT_THROW(ledger.record({6, 0.01, -1.0, 0, 0}), InvalidArgument);
  EXPECT_THROW(ledger.record({6, 0.01, std::nan(""), 0, 0}), InvalidArgument);
  EXPECT_THROW(ledger.record({6, 0.01, 1.0, 100, 0}), InvalidArgument);
  EXPECT_EQ(ledger.steps(), 1);
  ledger.record({6, 0.01, 0.0, 0, 0});  // a step without noise: no finite guarantee any more
  EXPECT_TRUE(std::isinf(ledger.epsilon(1e-5)));
}

TEST_F(LedgerFiles, SaveLoadRoundTrip) {
  const PrivacyLedger ledger = three_phase_ledger();
  ledger.save(path("ledger.json"));
  const PrivacyLedger loaded = PrivacyLedger::load(path("ledger.json"));
  EXPECT_EQ(loaded.to_json(), ledger.to_json());
  EXPECT_DOUBLE_EQ(loaded.epsilon(1e-6), ledger.epsilon(1e-6));
  // Nothing but the ledger is left in the directory: the temporary file was renamed over it.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(LedgerFiles, RefusesTruncatedEditedAndForeignFiles) {
  const PrivacyLedger ledger = three_phase_ledger();
  ledger.save(path("good.json"));
  const std::string text = read_file(path("good.json"));

  const auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(path(name)) << content;
    return path(name);
  };
  EXPECT_THROW(PrivacyLedger::load(write("truncated.json", text.substr(0, text.size() / 2))), FormatError);
  std::string edited = text;
  edited.replace(edited.find("\"steps\": 100"), 12, "\"steps\": 10 ");  // fewer steps: a cheaper epsilon
  EXPECT_THROW(PrivacyLedger::load(write("edited.json", edited)), FormatError);
  EXPECT_THROW(PrivacyLedger::load(write("empty.json", "")), FormatError);
  EXPECT_THROW(PrivacyLedger::load(write("array.json", "[1, 2]")), FormatError);
  // Found by fuzz/fuzz_ledger: a number beyond double made the JSON parser throw out_of_range,
  // which escaped as a nlohmann exception instead of FormatError.
  EXPECT_THROW(PrivacyLedger::load(write("overflow.json", "{\"next_step\": 1e999999}")), FormatError);
  EXPECT_THROW(PrivacyLedger::load(write("overflow2.json", "444444e44444444444")), FormatError);
  nlohmann::json wrong_version = ledger.to_json();
  wrong_version["version"] = 2;
  EXPECT_THROW(PrivacyLedger::load(write("version.json", wrong_version.dump())), FormatError);
  nlohmann::json no_phases = ledger.to_json();
  no_phases.erase("phases");
  EXPECT_THROW(PrivacyLedger::load(write("nophases.json", no_phases.dump())), FormatError);
  EXPECT_THROW(PrivacyLedger::load(path("missing.json")), IoError);
  try {
    PrivacyLedger::load(write("edited2.json", edited));
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
}

TEST_F(LedgerFiles, WriteAheadPersistsEveryStepBeforeTheUpdate) {
  PrivacyLedger ledger(path("run.json"));
  DpSgd<float> dp(small_config(), std::make_unique<Sgd<float>>(0.1), 3, &ledger);
  std::vector<float> params(8, 0.0f), grad(8, 1.0f);
  for (int s = 0; s < 3; ++s) {
    std::fill(grad.begin(), grad.end(), 1.0f);
    dp.step(params, grad);
    EXPECT_EQ(PrivacyLedger::load(path("run.json")).steps(), s + 1);
  }
  // A ledger that cannot be written fails when it is made, before any step.
  EXPECT_THROW(PrivacyLedger(path("no_such_dir/run.json")), IoError);
}

TEST_F(LedgerFiles, AFailedSaveStopsTheStepBeforeAnythingIsReleased) {
  PrivacyLedger ledger(path("run.json"));
  DpSgd<float> dp(small_config(), std::make_unique<Sgd<float>>(0.1), 3, &ledger);
  std::vector<float> params(8, 0.0f), grad(8, 1.0f);
  dp.step(params, grad);
  const std::vector<float> after_one = params;
  // The ledger's directory disappears (a full disk or a lost mount behaves alike): the next step
  // must not happen.
  fs::remove_all(dir_);
  EXPECT_THROW(dp.step(params, grad), IoError);
  EXPECT_EQ(params, after_one);
  EXPECT_EQ(ledger.steps(), 1);
  fs::create_directories(dir_);
}

TEST_F(LedgerFiles, AnExistingLedgerIsNeverReplaced) {
  {
    PrivacyLedger first(path("run.json"));
    for (std::uint64_t s = 0; s < 5; ++s) first.record({s, 0.01, 1.0, 0, 0});
  }
  const std::string before = read_file(path("run.json"));
  // A new run on the same file, a persist_to or a save onto it: all refused, the file unchanged.
  EXPECT_THROW(PrivacyLedger(path("run.json")), FileExists);
  PrivacyLedger other;
  other.record({0, 0.5, 50.0, 0, 0});
  EXPECT_THROW(other.persist_to(path("run.json")), FileExists);
  EXPECT_THROW(other.save(path("run.json")), FileExists);
  EXPECT_EQ(read_file(path("run.json")), before);
  // Negative control: the unguarded writer would have replaced it.
  write_file_atomically(path("copy.json"), before);
  write_file_atomically(path("copy.json"), other.to_json().dump());
  EXPECT_NE(read_file(path("copy.json")), before);
}

TEST_F(LedgerFiles, OpenContinuesTheRunAndKeepsItsSteps) {
  {
    PrivacyLedger first(path("run.json"));
    for (std::uint64_t s = 0; s < 5; ++s) first.record({s, 0.01, 1.0, 0, 0});
  }
  PrivacyLedger resumed = PrivacyLedger::open(path("run.json"));
  EXPECT_EQ(resumed.steps(), 5);
  EXPECT_EQ(resumed.next_step(), 5u);
  EXPECT_EQ(resumed.persist_path(), path("run.json"));
  EXPECT_THROW(resumed.record({4, 0.01, 1.0, 0, 0}), InvalidArgument);  // already charged
  resumed.record({5, 0.01, 1.0, 0, 0});
  resumed.save(path("run.json"));  // its own file: allowed
  EXPECT_EQ(PrivacyLedger::load(path("run.json")).steps(), 6);
  EXPECT_THROW(PrivacyLedger::open(path("missing.json")), IoError);
}

TEST_F(LedgerFiles, ASecondUserOfTheSameLedgerIsLockedOut) {
  PrivacyLedger first(path("run.json"));
  first.record({0, 0.01, 1.0, 0, 0});
  try {
    PrivacyLedger::open(path("run.json"));
    ADD_FAILURE() << "a second open of a ledger in use succeeded";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
  // Copies made by record() share the lock; once every copy is gone the file can be opened.
  first = PrivacyLedger();
  EXPECT_EQ(PrivacyLedger::open(path("run.json")).steps(), 1);
}

TEST(PrivacyLedger, ContinuesOnlyItsOwnHistory) {
  PrivacyLedger earlier;
  for (std::uint64_t s = 0; s < 10; ++s) earlier.record({s, 0.01, 1.0, 0, 0});
  PrivacyLedger later = earlier;
  for (std::uint64_t s = 10; s < 15; ++s) later.record({s, 0.01, 1.0, 0, 0});
  later.record({15, 0.02, 1.0, 0, 0});
  EXPECT_TRUE(later.continues(earlier));
  EXPECT_TRUE(earlier.continues(earlier));
  EXPECT_FALSE(earlier.continues(later));  // fewer steps than the checkpoint saw
  // The case: another run's ledger, one step at sigma 50, is not this run's continuation.
  PrivacyLedger foreign;
  foreign.record({100, 0.01, 50.0, 0, 0});
  EXPECT_FALSE(foreign.continues(earlier));
  PrivacyLedger other_sigma;
  for (std::uint64_t s = 0; s < 20; ++s) other_sigma.record({s, 0.01, 1.1, 0, 0});
  EXPECT_FALSE(other_sigma.continues(earlier));
}

TEST(PrivacyLedger, StepIndicesCannotWrap) {
  constexpr std::uint64_t kLast = std::numeric_limits<std::uint64_t>::max();
  PrivacyLedger ledger;
  ledger.record({kLast - 1, 0.01, 1.0, 0, 0});
  EXPECT_THROW(ledger.record({kLast, 0.01, 1.0, 0, 0}), InvalidArgument);
  DpSgdConfig config;
  config.sampling_rate = 0.01;
  config.expected_batch_size = 10.0;
  DpSgd<float> dp(config, std::make_unique<Sgd<float>>(0.1), 3);
  dp.resume_at(kLast);
  std::vector<float> params(4, 0.0f), grad(4, 1.0f);
  EXPECT_THROW(dp.step(params, grad), InvalidArgument);
  EXPECT_EQ(params, std::vector<float>(4, 0.0f));
  EXPECT_EQ(dp.next_step(), kLast);
}

// A whole-data-set release is charged like one step at sampling rate 1, composed with the steps, and
// written as version 2 (which a reader of version 1 refuses instead of silently dropping it).
TEST_F(LedgerFiles, ReleasesAreChargedComposedAndPersisted) {
  PrivacyLedger ledger(path("ledger.json"));
  EXPECT_EQ(ledger.record_release(8.0), 0u);
  EXPECT_EQ(PrivacyLedger::load(path("ledger.json")).releases(), std::vector<double>{8.0});  // write-ahead
  for (std::uint64_t step = 0; step < 50; ++step) ledger.record(DpStepRecord{step, 0.01, 1.1});
  EXPECT_EQ(ledger.record_release(16.0), 1u);
  const std::vector<TrainingPhase> composed = {TrainingPhase{{1.0, 8.0, 1}}, TrainingPhase{{1.0, 16.0, 1}},
                                               TrainingPhase{{0.01, 1.1, 50}}};
  EXPECT_NEAR(ledger.epsilon(1e-5), compute_epsilon(composed, 1e-5), 1e-9);
  PrivacyLedger steps_only;
  for (std::uint64_t step = 0; step < 50; ++step) steps_only.record(DpStepRecord{step, 0.01, 1.1});
  EXPECT_GT(ledger.epsilon(1e-5), steps_only.epsilon(1e-5));  // control: the releases cost something
  EXPECT_LT(ledger.delta(1.0), 1.0);

  const PrivacyLedger loaded = PrivacyLedger::load(path("ledger.json"));
  EXPECT_EQ(loaded.to_json(), ledger.to_json());
  EXPECT_EQ(loaded.to_json()["version"], 2);
  EXPECT_EQ(steps_only.to_json()["version"], 1);  // ledgers without releases read as before
  EXPECT_TRUE(loaded.continues(ledger));

  // A history without the releases, or with other ones, is not this one.
  EXPECT_FALSE(steps_only.continues(ledger));
  EXPECT_TRUE(ledger.continues(steps_only));  // releases charged since: more, never less
  PrivacyLedger other;
  other.record_release(9.0);
  EXPECT_FALSE(ledger.continues(other));

  const auto write = [&](const std::string& name, nlohmann::json document) {
    document.erase("checksum");
    document["checksum"] = fnv1a64_checksum(document.dump());
    std::ofstream(path(name)) << document.dump();
    return path(name);
  };
  nlohmann::json as_v1 = ledger.to_json();
  as_v1["version"] = 1;
  EXPECT_THROW(PrivacyLedger::load(write("v1.json", as_v1)), FormatError);
  nlohmann::json empty_releases = ledger.to_json();
  empty_releases["releases"] = nlohmann::json::array();
  EXPECT_THROW(PrivacyLedger::load(write("empty.json", empty_releases)), FormatError);
  nlohmann::json bad_sigma = ledger.to_json();
  bad_sigma["releases"][0] = 0.0;
  EXPECT_THROW(PrivacyLedger::load(write("sigma.json", bad_sigma)), FormatError);
  EXPECT_THROW(ledger.record_release(0.0), InvalidArgument);
  EXPECT_THROW(ledger.record_release(std::nan("")), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

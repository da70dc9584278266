// Tests of the persistent privacy ledger: recording, queries, atomic save/load, refusal of bad files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/core/atomic_file.hpp"
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
  DpSgdConfig config;
  config.sampling_rate = 0.01;
  config.expected_batch_size = 10.0;
  DpSgd<float> dp(config, std::make_unique<Sgd<float>>(0.1), 3, &ledger);
  std::vector<float> params(8, 0.0f), grad(8, 1.0f);
  for (int s = 0; s < 3; ++s) {
    std::fill(grad.begin(), grad.end(), 1.0f);
    dp.step(params, grad);
    EXPECT_EQ(PrivacyLedger::load(path("run.json")).steps(), s + 1);
  }
  // A ledger that cannot be written stops the step before anything is released.
  PrivacyLedger broken(path("no_such_dir/run.json"));
  DpSgd<float> dp2(config, std::make_unique<Sgd<float>>(0.1), 3, &broken);
  std::vector<float> before = params;
  EXPECT_THROW(dp2.step(params, grad), IoError);
  EXPECT_EQ(params, before);
  EXPECT_EQ(broken.steps(), 0);
}

}  // namespace
}  // namespace dpsgd

// Tests of TrainingRun: the run's files are never replaced, a resume keeps every charged step and
// refuses another run's files or changed settings, the seed stays out of the checkpoint.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/training_run.hpp"

namespace dpsgd {
namespace {

namespace fs = std::filesystem;

class TrainingRuns : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dpsgd_run_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  TrainingRunConfig config(TrainingRunConfig::Start start) const {
    TrainingRunConfig c;
    c.directory = (dir_ / "run").string();
    c.start = start;
    c.dataset_size = 1000;
    c.sampling_rate = 0.05;
    c.capacity = 80;  // below N: truncation must be charged
    c.noise_multiplier = 1.0;
    c.settings = {{"learning_rate", 0.1}};
    c.seed = 11;
    return c;
  }
  static std::unique_ptr<Optimizer<float>> sgd() { return std::make_unique<Sgd<float>>(0.1); }

  // Takes `steps` steps on a 4-parameter model with a constant clipped sum.
  static void train(TrainingRun& run, std::vector<float>& params, int steps) {
    for (int s = 0; s < steps; ++s) {
      const Batch batch = run.next_batch();
      std::vector<float> gradient(params.size(), 0.5f);
      run.step(params, gradient, batch);
    }
  }
  fs::path dir_;
};

TEST_F(TrainingRuns, ChargesTruncationAndKeepsTheSeedApart) {
  TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd());
  EXPECT_EQ(run.config().capacity, 80);
  EXPECT_EQ(run.config().dataset_size, 1000);
  EXPECT_DOUBLE_EQ(run.config().expected_batch_size, 50.0);
  std::vector<float> params(4, 0.0f);
  train(run, params, 3);
  run.checkpoint(params);
  ASSERT_EQ(run.ledger().phases().size(), 1u);
  EXPECT_EQ(run.ledger().phases()[0].capacity, 80);
  const std::string seed_file = (dir_ / "run" / "seed").string();
  struct stat info {};
  ASSERT_EQ(::stat(seed_file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(read_file(seed_file), "11\n");
  EXPECT_EQ(read_file((dir_ / "run" / "checkpoint.json").string()).find("\"seed\":11"), std::string::npos);
}

TEST_F(TrainingRuns, ASecondNewRunIsRefusedAndChangesNothing) {
  { TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd()); }
  const std::string ledger = read_file((dir_ / "run" / "ledger.json").string());
  EXPECT_THROW(TrainingRun(config(TrainingRunConfig::Start::kNew), sgd()), FileExists);
  EXPECT_EQ(read_file((dir_ / "run" / "ledger.json").string()), ledger);
  EXPECT_EQ(read_file((dir_ / "run" / "seed").string()), "11\n");
}

TEST_F(TrainingRuns, AResumeKeepsEveryChargedStepWithOrWithoutACheckpoint) {
  std::vector<float> params(4, 0.0f);
  {
    TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd());
    train(run, params, 2);  // killed before its first checkpoint
  }
  std::vector<float> resumed_params(4, 0.0f);
  {
    TrainingRun run(config(TrainingRunConfig::Start::kResume), sgd());
    EXPECT_TRUE(run.restored_parameters().empty());
    EXPECT_EQ(run.next_step(), 2u);
    EXPECT_EQ(run.ledger().steps(), 2);
    train(run, resumed_params, 3);
    run.checkpoint(resumed_params, {{"note", "five"}});
    train(run, resumed_params, 1);  // charged after the checkpoint
  }
  TrainingRun run(config(TrainingRunConfig::Start::kResume), sgd());
  ASSERT_EQ(run.restored_parameters().size(), 4u);  // the checkpoint's, from before the last step
  EXPECT_EQ(run.restored_extra()["note"], "five");
  EXPECT_EQ(run.ledger().steps(), 6);
  EXPECT_EQ(run.next_step(), 6u);  // the step charged after the checkpoint is not taken again
}

TEST_F(TrainingRuns, AResumeRefusesChangedSettingsAnotherLedgerAndASecondProcess) {
  { TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd()); }
  TrainingRunConfig louder = config(TrainingRunConfig::Start::kResume);
  louder.noise_multiplier = 2.0;
  EXPECT_THROW(TrainingRun(louder, sgd()), InvalidArgument);
  TrainingRunConfig other_seed = config(TrainingRunConfig::Start::kResume);
  other_seed.seed = 12;
  EXPECT_THROW(TrainingRun(other_seed, sgd()), InvalidArgument);
  TrainingRun open(config(TrainingRunConfig::Start::kResume), sgd());
  EXPECT_THROW(TrainingRun(config(TrainingRunConfig::Start::kResume), sgd()), IoError);  // locked
  TrainingRunConfig none = config(TrainingRunConfig::Start::kResume);
  none.directory = (dir_ / "nothing").string();
  EXPECT_THROW(TrainingRun(none, sgd()), IoError);
}

TEST_F(TrainingRuns, ACheckpointWhoseLedgerWasReplacedIsRefused) {
  std::vector<float> params(4, 0.0f);
  {
    TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd());
    train(run, params, 3);
    run.checkpoint(params);
  }
  // Another run's ledger (one step at sigma 50) put in its place: not this checkpoint's history.
  const std::string ledger_path = (dir_ / "run" / "ledger.json").string();
  fs::remove(ledger_path);
  PrivacyLedger foreign;
  foreign.record({100, 0.05, 50.0, 1000, 80});
  foreign.save(ledger_path);
  EXPECT_THROW(TrainingRun(config(TrainingRunConfig::Start::kResume), sgd()), FormatError);
}

TEST_F(TrainingRuns, ANonFiniteModelIsNotCheckpointed) {
  TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd());
  std::vector<float> params(4, 0.0f);
  train(run, params, 1);
  run.checkpoint(params);
  const std::string good = read_file((dir_ / "run" / "checkpoint.json").string());
  params[2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(run.checkpoint(params), InvalidArgument);
  EXPECT_EQ(read_file((dir_ / "run" / "checkpoint.json").string()), good);
}

}  // namespace
}  // namespace dpsgd

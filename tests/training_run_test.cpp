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
    c.steps = 100;
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

// A replica (a data-parallel rank other than the writer) takes exactly the writer's steps from its
// state, with no files; one opened with another mechanism is refused.
TEST_F(TrainingRuns, AReplicaTakesTheWritersStepsAndOwnsNoFiles) {
  TrainingRunConfig writer_config = config(TrainingRunConfig::Start::kNew);
  writer_config.seed.reset();  // a secret seed from the OS: the replica can only follow it through the state
  TrainingRun writer(writer_config, std::make_unique<Momentum<float>>(0.1, 0.9));
  std::vector<float> params(4, 0.0f);
  train(writer, params, 3);
  writer.checkpoint(params);
  TrainingRunConfig replica_config = config(TrainingRunConfig::Start::kNew);
  replica_config.directory = (dir_ / "elsewhere").string();  // never created
  replica_config.seed.reset();
  auto replica =
      TrainingRun::replica(replica_config, writer.replica_state(), params, std::make_unique<Momentum<float>>(0.1, 0.9));
  EXPECT_TRUE(replica->is_replica());
  EXPECT_EQ(replica->next_step(), 3u);
  EXPECT_EQ(replica->ledger().steps(), 3);
  EXPECT_EQ(replica->restored_parameters(), params);
  std::vector<float> mirrored = params;
  for (int s = 0; s < 4; ++s) {
    const Batch a = writer.next_batch(), b = replica->next_batch();
    EXPECT_EQ(a.indices, b.indices);
    std::vector<float> g1(4, 0.25f * static_cast<float>(s + 1)), g2 = g1;
    writer.step(params, g1, a);
    replica->step(mirrored, g2, b);
  }
  EXPECT_EQ(mirrored, params);  // same noise and the same optimiser state: the same bits
  EXPECT_EQ(replica->ledger().to_json(), writer.ledger().to_json());
  EXPECT_DOUBLE_EQ(replica->epsilon(1e-5), writer.epsilon(1e-5));
  EXPECT_FALSE(fs::exists(dir_ / "elsewhere"));
  EXPECT_THROW(replica->checkpoint(mirrored), InvalidArgument);
  EXPECT_THROW(replica->replica_state(), InvalidArgument);
  // Control: a replica started with another noise multiplier or settings is refused.
  TrainingRunConfig louder = replica_config;
  louder.noise_multiplier = 2.0;
  EXPECT_THROW(TrainingRun::replica(louder, writer.replica_state(), params, sgd()), InvalidArgument);
  TrainingRunConfig other = replica_config;
  other.settings = {{"learning_rate", 0.2}};
  EXPECT_THROW(TrainingRun::replica(other, writer.replica_state(), params, sgd()), InvalidArgument);
  EXPECT_THROW(TrainingRun::replica(replica_config, nlohmann::json::object(), params, sgd()), InvalidArgument);
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

TEST_F(TrainingRuns, AResumeThatOnlyChangesTheLengthSaysSo) {
  { TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd()); }
  TrainingRunConfig longer = config(TrainingRunConfig::Start::kResume);
  longer.steps = 250;
  {
    TrainingRun run(longer, sgd());
    ASSERT_EQ(run.notes().size(), 1u);
    EXPECT_NE(run.notes()[0].find("planned for 100 steps and now for 250"), std::string::npos) << run.notes()[0];
    EXPECT_EQ(run.planned_steps(), 250);
  }
  TrainingRun again(longer, sgd());  // run.json now says 250: nothing more to note
  EXPECT_TRUE(again.notes().empty());
}

TEST_F(TrainingRuns, ARefusedResumeNamesWhatChanged) {
  { TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd()); }
  TrainingRunConfig changed = config(TrainingRunConfig::Start::kResume);
  changed.settings["learning_rate"] = 0.2;
  changed.capacity = 90;
  try {
    TrainingRun run(changed, sgd());
    FAIL() << "a resume with another capacity and learning rate was accepted";
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("settings.learning_rate was 0.1, now 0.2"), std::string::npos) << what;
    EXPECT_NE(what.find("capacity was 80, now 90"), std::string::npos) << what;
  }
}

TEST_F(TrainingRuns, ACheckpointOfAnotherRunWithTheSameDefinitionIsRefused) {
  std::vector<float> params(4, 0.0f);
  TrainingRunConfig first = config(TrainingRunConfig::Start::kNew);
  TrainingRunConfig second = first;
  second.directory = (dir_ / "twin").string();
  {
    TrainingRun a(first, sgd());
    TrainingRun b(second, sgd());
    train(a, params, 2);
    a.checkpoint(params);
    train(b, params, 2);
    b.checkpoint(params);
  }
  // Both ledgers hold the same two steps: only the run id tells the checkpoints apart.
  fs::copy_file(dir_ / "twin" / "checkpoint.json", dir_ / "run" / "checkpoint.json",
                fs::copy_options::overwrite_existing);
  EXPECT_THROW(TrainingRun(config(TrainingRunConfig::Start::kResume), sgd()), FormatError);
}

TEST_F(TrainingRuns, ANewRunAppearsWholeOrNotAtAllAndNeverInAFullDirectory) {
  fs::create_directories(dir_ / "run");
  { TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd()); }  // an empty directory is taken
  EXPECT_TRUE(fs::exists(dir_ / "run" / "ledger.json"));
  TrainingRunConfig busy = config(TrainingRunConfig::Start::kNew);
  busy.directory = (dir_ / "busy").string();
  fs::create_directories(dir_ / "busy");
  write_file_atomically((dir_ / "busy" / "notes.txt").string(), "mine\n");
  EXPECT_THROW(TrainingRun(busy, sgd()), FileExists);
  EXPECT_EQ(read_file((dir_ / "busy" / "notes.txt").string()), "mine\n");
  // No staging directory is left beside the runs after success or refusal.
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_EQ(entry.path().filename().string().find(".new-"), std::string::npos) << entry.path();
}

TEST_F(TrainingRuns, ResumeOrNewStartsOnceThenResumes) {
  std::vector<float> params(4, 0.0f);
  {
    TrainingRun run(config(TrainingRunConfig::Start::kResumeOrNew), sgd());
    EXPECT_FALSE(run.resumed());
    train(run, params, 2);
  }
  TrainingRun run(config(TrainingRunConfig::Start::kResumeOrNew), sgd());
  EXPECT_TRUE(run.resumed());
  EXPECT_EQ(run.next_step(), 2u);
  ASSERT_EQ(run.notes().size(), 1u);
  EXPECT_NE(run.notes()[0].find("2 steps were charged before any checkpoint"), std::string::npos) << run.notes()[0];
}

TEST_F(TrainingRuns, StaleTemporaryFilesOfAKilledProcessAreRemovedOnResume) {
  { TrainingRun run(config(TrainingRunConfig::Start::kNew), sgd()); }
  const fs::path stale = dir_ / "run" / "checkpoint.json.tmp.AbC123";
  write_file_atomically(stale.string(), "half a checkpoint");
  const fs::path mine = dir_ / "run" / "my.tmp.file";
  write_file_atomically(mine.string(), "not the run's");
  TrainingRun run(config(TrainingRunConfig::Start::kResume), sgd());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(mine));
}

// Without noise each step moves a parameter by lr * factor(step) * gradient / (q N): the schedule's
// factors, step by step, across a resume (the factor follows the step index, not a counter).
TEST_F(TrainingRuns, AScheduleSetsEachStepsLearningRateAndSurvivesAResume) {
  TrainingRunConfig c = config(TrainingRunConfig::Start::kNew);
  c.noise_multiplier = 0.0;
  c.steps = 10;
  c.schedule = {LearningRateSchedule::Kind::kCosine, 0.0};
  const auto moves = [&](TrainingRun& run, std::vector<float>& params, int steps) {
    for (int s = 0; s < steps; ++s) {
      const std::uint64_t step = run.next_step();
      const float before = params[0];
      train(run, params, 1);
      const double expected = 0.1 * c.schedule.factor(step, c.steps) * 0.5 / 50.0;
      EXPECT_NEAR(before - params[0], expected, 1e-6 * 0.1 * 0.5 / 50.0 + 1e-9) << "step " << step;
    }
  };
  std::vector<float> params(4, 0.0f);
  {
    TrainingRun run(c, sgd());
    moves(run, params, 4);
    run.checkpoint(params);
  }
  c.start = TrainingRunConfig::Start::kResume;
  {
    TrainingRun run(c, sgd());
    moves(run, params, 6);
    EXPECT_TRUE(run.finished());
  }
  EXPECT_NEAR(params[0], -0.1 * 0.5 / 50.0 * 5.0, 1e-6);  // ten cosine factors from 1 to 0 sum to 5
  TrainingRunConfig other = c;                            // the schedule is part of the run's definition
  other.schedule = {LearningRateSchedule::Kind::kLinear, 0.0};
  EXPECT_THROW(TrainingRun(other, sgd()), InvalidArgument);
  other.schedule = {LearningRateSchedule::Kind::kCosine, 2.0};
  EXPECT_THROW(TrainingRun(other, sgd()), InvalidArgument);
}

TEST_F(TrainingRuns, PlannedStepsAreValidated) {
  TrainingRunConfig none = config(TrainingRunConfig::Start::kNew);
  none.steps = 0;
  EXPECT_THROW(TrainingRun(none, sgd()), InvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

}  // namespace
}  // namespace dpsgd

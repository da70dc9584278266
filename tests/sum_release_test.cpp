// Tests of the whole-data-set release: the clipped noisy sum (clip bound under adversarial rows, the
// noise's scale, refusal of non-finite rows), its charge in the run's ledger, its calibration with the
// training steps, and a resume that returns the saved release without reading the data again.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dpsgd/accounting/calibration.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/optim/sum_release.hpp"
#include "dpsgd/optim/training_run.hpp"

namespace dpsgd {
namespace {

namespace fs = std::filesystem;

// A noise multiplier so small that the noise (stddev 1e-300 C) is far below every bound checked.
constexpr double kNoNoise = 1e-300;

double norm_of(const std::vector<double>& v) {
  long double s = 0.0L;
  for (const double x : v) s += static_cast<long double>(x) * x;
  return static_cast<double>(std::sqrt(s));
}

RowSource constant_rows(std::vector<std::vector<double>> rows) {
  return [rows = std::move(rows)](std::int64_t i, std::span<double> out) {
    std::copy(rows[static_cast<std::size_t>(i)].begin(), rows[static_cast<std::size_t>(i)].end(), out.begin());
  };
}

TEST(SumRelease, SumsRowsClippedToTheClipNorm) {
  const SumRelease release{.dimension = 3, .clip_norm = 2.0, .noise_multiplier = kNoNoise};
  // Row 0 is inside the ball and kept as it is; row 1 (norm 10) is scaled to norm 2.
  const auto sum = noisy_clipped_sum(release, 2, constant_rows({{0.5, -1.0, 0.0}, {6.0, 0.0, 8.0}}), NoiseKey(1, 2, 3));
  EXPECT_NEAR(sum[0], 0.5 + 1.2, 1e-12);
  EXPECT_NEAR(sum[1], -1.0, 1e-12);
  EXPECT_NEAR(sum[2], 1.6, 1e-12);
}

// Each adversarial row alone: what it adds to the sum, as computed, stays within C; the unclipped
// rows are far outside (the control that clipping did the work).
TEST(SumRelease, NoRowAddsMoreThanTheClipNormWhateverItsValues) {
  const double c = 1.0;
  const SumRelease release{.dimension = 4096, .clip_norm = c, .noise_multiplier = kNoNoise};
  std::vector<std::vector<double>> rows;
  std::vector<double> offset(4096), huge(4096), tiny(4096), mixed(4096), edge(4096);
  for (std::size_t j = 0; j < 4096; ++j) {
    offset[j] = 1e8 + (j % 2 == 0 ? 1.0 : -1.0);    // cancellation around a large offset
    huge[j] = (j % 3 == 0 ? -1.0 : 1.0) * 1e300;    // squares overflow
    tiny[j] = 3e-310 * static_cast<double>(j + 1);  // subnormal squares vanish
    mixed[j] = j == 0 ? 1e200 : 1e-200;
    edge[j] = c / 64.0 * (1.0 + 1e-15 * static_cast<double>(j));  // norm a hair above C
  }
  for (const auto& row : {offset, huge, tiny, mixed, edge}) {
    const auto sum = noisy_clipped_sum(release, 1, constant_rows({row}), NoiseKey(5, 6, 7));
    EXPECT_LE(norm_of(sum), c * (1.0 + 1e-12));
    EXPECT_GT(norm_of(sum), 0.0);
  }
  EXPECT_GT(norm_of(offset), 1e9 * c);
  EXPECT_GT(norm_of(edge), c);
}

// All-zero rows: the release is the noise alone, stddev sigma C per coordinate. Over 40,000
// coordinates the sample stddev is within 3% of it unless a 1e-8 event happens (its relative error
// has stddev 0.35%), and the mean within 0.03 sigma C (6 sigma of the sample mean).
TEST(SumRelease, TheNoiseHasTheStatedScaleAndComesFromTheKey) {
  const SumRelease release{.dimension = 40000, .clip_norm = 0.5, .noise_multiplier = 3.0};
  const RowSource zeros = [](std::int64_t, std::span<double> out) { std::fill(out.begin(), out.end(), 0.0); };
  const auto a = noisy_clipped_sum(release, 10, zeros, NoiseKey(9, 1, 0));
  double mean = 0.0, square = 0.0;
  for (const double x : a) {
    mean += x;
    square += x * x;
  }
  mean /= static_cast<double>(a.size());
  const double stddev = std::sqrt(square / static_cast<double>(a.size()) - mean * mean);
  EXPECT_NEAR(stddev, 1.5, 0.03 * 1.5);
  EXPECT_NEAR(mean, 0.0, 0.03 * 1.5);
  EXPECT_EQ(a, noisy_clipped_sum(release, 10, zeros, NoiseKey(9, 1, 0)));  // the key fixes the noise
  EXPECT_NE(a, noisy_clipped_sum(release, 10, zeros, NoiseKey(9, 1, 1)));  // another stream, other noise
}

TEST(SumRelease, RefusesNonFiniteRowsAndBadArgumentsByName) {
  const SumRelease release{.dimension = 2, .clip_norm = 1.0, .noise_multiplier = 1.0};
  const auto nan_row = constant_rows({{0.0, 0.0}, {1.0, std::nan("")}});
  try {
    noisy_clipped_sum(release, 2, nan_row, NoiseKey(1, 1, 1));
    FAIL() << "a NaN row was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("row(1)[1]"), std::string::npos) << e.what();
  }
  const auto inf_row = constant_rows({{std::numeric_limits<double>::infinity(), 0.0}});
  EXPECT_THROW(noisy_clipped_sum(release, 1, inf_row, NoiseKey(1, 1, 1)), InvalidArgument);
  const auto ok = constant_rows({{0.0, 0.0}});
  EXPECT_THROW(noisy_clipped_sum({.dimension = 0, .clip_norm = 1.0, .noise_multiplier = 1.0}, 1, ok, NoiseKey(1, 1, 1)),
               InvalidArgument);
  EXPECT_THROW(noisy_clipped_sum({.dimension = 2, .clip_norm = 0.0, .noise_multiplier = 1.0}, 1, ok, NoiseKey(1, 1, 1)),
               InvalidArgument);
  EXPECT_THROW(noisy_clipped_sum({.dimension = 2, .clip_norm = 1.0, .noise_multiplier = 0.0}, 1, ok, NoiseKey(1, 1, 1)),
               InvalidArgument);
  EXPECT_THROW(noisy_clipped_sum(release, 0, ok, NoiseKey(1, 1, 1)), InvalidArgument);
}

// Calibration with a release spent: the composition meets the target, needs more noise than the run
// alone, and 0.1% less noise than the answer would miss the target (the answer is tight).
TEST(SumRelease, CalibrationAfterASpentReleaseMeetsTheTargetTightly) {
  const NoiseCalibrationQuery query{.sampling_rate = 0.01, .steps = 2000, .epsilon = 2.0, .delta = 1e-5};
  const std::vector<TrainingPhase> spent = {TrainingPhase{{1.0, 10.0, 1}}};
  const NoiseCalibration alone = calibrate_noise(query);
  const NoiseCalibration after = calibrate_noise_after(spent, query);
  EXPECT_GT(after.noise_multiplier, alone.noise_multiplier);
  std::vector<TrainingPhase> composed = {spent[0], TrainingPhase{{0.01, after.noise_multiplier, 2000}}};
  EXPECT_LE(compute_epsilon(composed, 1e-5), 2.0);
  EXPECT_NEAR(after.answer.value, compute_epsilon(composed, 1e-5), 1e-12);
  composed[1].noise_multiplier = after.noise_multiplier / 1.001;
  EXPECT_GT(compute_epsilon(composed, 1e-5), 2.0);
  EXPECT_EQ(calibrate_noise_after({}, query).noise_multiplier, alone.noise_multiplier);
  // A release that alone spends the budget leaves nothing for training.
  const std::vector<TrainingPhase> greedy = {TrainingPhase{{1.0, 0.5, 1}}};
  EXPECT_THROW(calibrate_noise_after(greedy, query), InvalidArgument);
}

class RunReleases : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dpsgd_release_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunPlanRequest request(bool resume, double release_sigma = 5.0) const {
    RunPlanRequest r{.directory = (dir_ / "run").string(),
                     .resume = resume,
                     .dataset_size = 200,
                     .expected_batch_size = 20,
                     .epochs = 2,
                     .clip = ClipConfig::flat(1.0),
                     .epsilon = 3.0,
                     .delta = 1e-5,
                     .noise_multiplier = std::nullopt,
                     .no_privacy = false,
                     .settings = nlohmann::json::object(),
                     .seed = 21,
                     .release = SumRelease{.dimension = 3, .clip_norm = 1.0, .noise_multiplier = release_sigma}};
    return r;
  }
  static std::unique_ptr<Optimizer<float>> sgd() { return std::make_unique<Sgd<float>>(0.1); }
  // Row i = (i / 200, 1, -1) clipped to norm 1: the features of a data set of 200 examples.
  static void row(std::int64_t i, std::span<double> out) {
    out[0] = static_cast<double>(i) / 200.0;
    out[1] = 1.0;
    out[2] = -1.0;
  }
  fs::path dir_;
};

TEST_F(RunReleases, AReleaseIsChargedSavedAndReturnedAgainOnResume) {
  std::vector<double> first;
  double epsilon_after_release = 0.0;
  {
    TrainingRun run(plan_run(request(false)), sgd());
    first = run.release_sum(&RunReleases::row);
    ASSERT_EQ(first.size(), 3u);
    EXPECT_EQ(run.ledger().releases(), std::vector<double>{5.0});
    EXPECT_GT(run.ledger().epsilon(1e-5), 0.0);
    epsilon_after_release = run.ledger().epsilon(1e-5);
    EXPECT_TRUE(fs::exists(dir_ / "run" / "release.json"));
    // The planned run with its release fits the target it was calibrated to.
    const std::int64_t capacity = run.sampler().capacity();
    const bool truncated = capacity < 200;
    std::vector<TrainingPhase> all = {
        TrainingPhase{{1.0, 5.0, 1}},
        TrainingPhase{{run.config().sampling_rate, run.config().noise_multiplier, run.planned_steps()},
                      truncated ? 200 : 0,
                      truncated ? capacity : 0}};
    EXPECT_LE(compute_epsilon(all, 1e-5), 3.0);
  }
  TrainingRun resumed(plan_run(request(true)), sgd());
  const RowSource must_not_read = [](std::int64_t, std::span<double>) { FAIL() << "the resume read the data"; };
  EXPECT_EQ(resumed.release_sum(must_not_read), first);
  EXPECT_EQ(resumed.ledger().releases().size(), 1u);  // charged once
  EXPECT_DOUBLE_EQ(resumed.ledger().epsilon(1e-5), epsilon_after_release);
}

TEST_F(RunReleases, ALostReleaseIsNotMadeAgainAndAChangedOneIsRefused) {
  {
    TrainingRun run(plan_run(request(false)), sgd());
    run.release_sum(&RunReleases::row);
  }
  {
    // Another release (noise) for the same run: refused, the run's definition names it.
    EXPECT_THROW(TrainingRun(plan_run(request(true, 6.0)), sgd()), InvalidArgument);
  }
  fs::remove(dir_ / "run" / "release.json");
  TrainingRun resumed(plan_run(request(true)), sgd());
  EXPECT_THROW(resumed.release_sum(&RunReleases::row), Error);  // its noise would be reused
  EXPECT_EQ(resumed.ledger().releases().size(), 1u);
}

TEST_F(RunReleases, ARefusedRowChargesNothingAndTheReleaseCanStillBeMade) {
  TrainingRun run(plan_run(request(false)), sgd());
  const RowSource bad = [](std::int64_t i, std::span<double> out) {
    RunReleases::row(i, out);
    if (i == 17) out[1] = std::nan("");
  };
  EXPECT_THROW(run.release_sum(bad), InvalidArgument);
  EXPECT_TRUE(run.ledger().releases().empty());
  EXPECT_FALSE(fs::exists(dir_ / "run" / "release.json"));
  EXPECT_EQ(run.release_sum(&RunReleases::row).size(), 3u);
  EXPECT_EQ(run.ledger().releases().size(), 1u);
}

TEST_F(RunReleases, ARunWithoutAReleaseRefusesToMakeOne) {
  RunPlanRequest r = request(false);
  r.release.reset();
  TrainingRun run(plan_run(r), sgd());
  EXPECT_THROW(run.release_sum(&RunReleases::row), InvalidArgument);
  EXPECT_TRUE(run.ledger().releases().empty());
}

}  // namespace
}  // namespace dpsgd

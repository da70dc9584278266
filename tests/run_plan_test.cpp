// Tests of plan_run: a new run gets the capacity rule and the calibrated sigma, a resumed run keeps its
// own mechanism whatever target is asked for, and out-of-range requests are refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "dpsgd/accounting/calibration.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/run_plan.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

RunPlanRequest request(const std::string& directory) {
  return {.directory = directory,
          .resume = false,
          .dataset_size = 10000,
          .expected_batch_size = 250,
          .epochs = 3,
          .clip = ClipConfig::flat(0.5),
          .epsilon = 2.0,
          .delta = 1e-5,
          .noise_multiplier = std::nullopt,
          .no_privacy = false,
          .settings = nlohmann::json::object(),
          .seed = 42,
          .release = std::nullopt};
}

std::string fresh_dir() {
  return (std::filesystem::temp_directory_path() / ("dpsgd_run_plan_" + std::to_string(std::random_device{}())))
      .string();
}

TEST(RunPlan, NewRunGetsTheCapacityRuleAndTheCalibratedSigma) {
  const TrainingRunConfig c = plan_run(request(fresh_dir()));
  EXPECT_DOUBLE_EQ(c.sampling_rate, 0.025);
  EXPECT_EQ(c.steps, 120);  // ceil(3 / 0.025)
  EXPECT_EQ(c.start, TrainingRunConfig::Start::kNew);
  const std::int64_t capacity = capacity_for_delta_share(10000, 0.025, 120, 2.0, 1e-5).capacity;
  EXPECT_EQ(c.capacity, capacity);
  ASSERT_LT(capacity, 10000);  // truncated, so calibration must include the charge
  const double sigma = calibrate_noise({.sampling_rate = 0.025,
                                        .steps = 120,
                                        .epsilon = 2.0,
                                        .delta = 1e-5,
                                        .dataset_size = 10000,
                                        .capacity = capacity})
                           .noise_multiplier;
  EXPECT_EQ(c.noise_multiplier, sigma);
  EXPECT_EQ(c.clip.group_clip_norms, std::vector<double>{0.5});
  // Given sigma and no privacy replace the calibration, not the capacity rule.
  RunPlanRequest given = request(fresh_dir());
  given.noise_multiplier = 0.8;
  EXPECT_EQ(plan_run(given).noise_multiplier, 0.8);
  EXPECT_EQ(plan_run(given).capacity, capacity);
  RunPlanRequest baseline = request(fresh_dir());
  baseline.no_privacy = true;
  EXPECT_EQ(plan_run(baseline).noise_multiplier, 0.0);
}

// A resume asking for another epsilon still gets the stored sigma and capacity; the control: without
// resume the same request calibrates anew (and differs).
TEST(RunPlan, ResumedRunKeepsItsOwnMechanism) {
  const std::string dir = fresh_dir();
  const TrainingRunConfig first = plan_run(request(dir));
  { TrainingRun run(first, std::make_unique<Sgd<float>>(0.1)); }
  RunPlanRequest louder = request(dir);
  louder.epsilon = 8.0;
  louder.resume = true;
  const TrainingRunConfig resumed = plan_run(louder);
  EXPECT_EQ(resumed.start, TrainingRunConfig::Start::kResumeOrNew);
  EXPECT_EQ(resumed.noise_multiplier, first.noise_multiplier);
  EXPECT_EQ(resumed.capacity, first.capacity);
  louder.resume = false;
  EXPECT_LT(plan_run(louder).noise_multiplier, first.noise_multiplier * 0.7);
  std::filesystem::remove_all(dir);
}

TEST(RunPlan, RefusesOutOfRangeRequestsByName) {
  const auto expect_refused = [](RunPlanRequest r, const std::string& name) {
    try {
      plan_run(r);
      ADD_FAILURE() << name << " was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  RunPlanRequest r = request(fresh_dir());
  r.expected_batch_size = 20000;
  expect_refused(r, "expected_batch_size");
  r = request(fresh_dir());
  r.dataset_size = 0;
  expect_refused(r, "dataset_size");
  r = request(fresh_dir());
  r.epochs = std::nan("");
  expect_refused(r, "epochs");
  r = request(fresh_dir());
  r.delta = 1.0;
  expect_refused(r, "delta");
  r = request(fresh_dir());
  r.epsilon = -1.0;
  expect_refused(r, "epsilon");
  r = request(fresh_dir());
  r.noise_multiplier = -0.5;
  expect_refused(r, "noise_multiplier");
}

}  // namespace
}  // namespace dpsgd

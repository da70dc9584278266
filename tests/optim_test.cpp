// Tests of the optimisers and of the DpSgd step driver (noise, scaling, write-ahead accounting).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <span>
#include <vector>

#include "dpsgd/optim/dp_sgd.hpp"
#include "dpsgd/optim/learning_rate_schedule.hpp"

namespace dpsgd {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Sgd, StepsAgainstTheGradient) {
  Sgd<double> sgd(0.5);
  std::vector<double> p{1.0, 2.0}, g{2.0, -4.0};
  sgd.update(p, g);
  EXPECT_EQ(p, (std::vector<double>{0.0, 4.0}));
}

TEST(Momentum, HeavyBallAndNesterovByHand) {
  Momentum<double> heavy(0.1, 0.9), nesterov(0.1, 0.9, true);
  std::vector<double> p{0.0}, q{0.0}, g{1.0};
  heavy.update(p, g);
  heavy.update(p, g);  // v = 1, then 1.9: p = -0.1 - 0.19
  EXPECT_NEAR(p[0], -0.29, 1e-15);
  nesterov.update(q, g);
  nesterov.update(q, g);  // steps lr (g + mu v): 0.1 (1 + 0.9) then 0.1 (1 + 0.9 * 1.9)
  EXPECT_NEAR(q[0], -(0.19 + 0.1 * (1.0 + 0.9 * 1.9)), 1e-15);
}

TEST(Momentum, StateRoundTripContinuesIdentically) {
  Momentum<float> a(0.1, 0.5);
  std::vector<float> p{1.0f, 2.0f}, g{0.3f, -0.2f};
  a.update(p, g);
  Momentum<float> b(0.1, 0.5);
  b.set_state(a.state());
  std::vector<float> pa = p, pb = p;
  a.update(pa, g);
  b.update(pb, g);
  EXPECT_EQ(pa, pb);
}

TEST(Optimizers, TheLearningRateFactorScalesEachUpdate) {
  Sgd<double> sgd(0.5);
  Momentum<double> momentum(0.5, 0.9);
  std::vector<double> p{1.0}, q{1.0}, g{2.0};
  sgd.set_learning_rate_factor(0.25);
  sgd.update(p, g);
  EXPECT_EQ(p[0], 1.0 - 0.25 * 0.5 * 2.0);
  momentum.update(q, g);  // factor 1: v = 2, q = 1 - 1
  momentum.set_learning_rate_factor(0.0);
  momentum.update(q, g);  // factor 0: the velocity still accumulates (v = 3.8), q stays
  EXPECT_EQ(q[0], 0.0);
  momentum.set_learning_rate_factor(0.5);
  momentum.update(q, g);  // v = 0.9 * 3.8 + 2 = 5.42
  EXPECT_NEAR(q[0], -0.25 * 5.42, 1e-15);
  for (const double bad : {-0.1, kNaN, std::numeric_limits<double>::infinity()})
    EXPECT_THROW(sgd.set_learning_rate_factor(bad), InvalidArgument) << bad;
  EXPECT_EQ(sgd.learning_rate_factor(), 0.25);  // a refused factor changes nothing
}

TEST(LearningRateSchedule, FactorsFollowTheirFormulas) {
  using Kind = LearningRateSchedule::Kind;
  const LearningRateSchedule constant{}, cosine{Kind::kCosine, 0.1}, linear{Kind::kLinear, 0.0};
  for (const std::uint64_t step : {0u, 5u, 10u, 99u}) EXPECT_EQ(constant.factor(step, 11), 1.0);
  EXPECT_EQ(cosine.factor(0, 11), 1.0);
  EXPECT_NEAR(cosine.factor(5, 11), 0.55, 1e-15);  // the middle: half way to the final factor
  EXPECT_NEAR(cosine.factor(1, 11), 0.1 + 0.9 * 0.5 * (1.0 + std::cos(std::numbers::pi / 10.0)), 1e-15);
  EXPECT_NEAR(cosine.factor(10, 11), 0.1, 1e-15);  // the last planned step
  EXPECT_NEAR(cosine.factor(25, 11), 0.1, 1e-15);  // past the plan: stays there
  EXPECT_NEAR(linear.factor(4, 11), 0.6, 1e-15);
  EXPECT_EQ(linear.factor(10, 11), 0.0);
  EXPECT_EQ(linear.factor(0, 1), 1.0);               // a one-step plan takes its one step at the base rate
  for (std::uint64_t step = 1; step < 11; ++step) {  // decreasing, within [final, 1]
    EXPECT_LT(cosine.factor(step, 11), cosine.factor(step - 1, 11));
    EXPECT_GE(cosine.factor(step, 11), 0.1 - 1e-15);
  }
  EXPECT_EQ(LearningRateSchedule::kind_named("--schedule", "cosine"), Kind::kCosine);
  EXPECT_THROW(LearningRateSchedule::kind_named("--schedule", "exponential"), InvalidArgument);
  for (const double bad : {-0.01, 1.5, kNaN})
    EXPECT_THROW((LearningRateSchedule{Kind::kCosine, bad}.validate()), InvalidArgument) << bad;
}

TEST(Adam, MatchesTheBiasCorrectedFormula) {
  Adam<double> adam(0.01, 0.9, 0.999, 1e-8);
  std::vector<double> p{1.0}, g1{0.5}, g2{-0.25};
  adam.update(p, g1);
  // Step 1: m_hat = g, v_hat = g^2, update = lr g / (|g| + eps).
  EXPECT_NEAR(p[0], 1.0 - 0.01 * 0.5 / (0.5 + 1e-8), 1e-14);
  const double before = p[0];
  adam.update(p, g2);
  const double m = 0.9 * 0.1 * 0.5 + 0.1 * -0.25, v = 0.999 * 0.001 * 0.25 + 0.001 * 0.0625;
  const double m_hat = m / (1 - 0.81), v_hat = v / (1 - 0.999 * 0.999);
  EXPECT_NEAR(p[0], before - 0.01 * m_hat / (std::sqrt(v_hat) + 1e-8), 1e-14);
  Adam<double> restored(0.01);
  restored.set_state(adam.state());
  std::vector<double> pa = p, pb = p;
  adam.update(pa, g1);
  restored.update(pb, g1);
  EXPECT_EQ(pa, pb);
}

TEST(Optimizers, RejectBadArguments) {
  for (double lr : {0.0, -1.0, kNaN, std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(Sgd<float>{lr}, InvalidArgument) << lr;
    EXPECT_THROW(Adam<float>{lr}, InvalidArgument) << lr;
    EXPECT_THROW((Momentum<float>{lr, 0.9}), InvalidArgument) << lr;
  }
  EXPECT_THROW((Momentum<float>{0.1, 1.0}), InvalidArgument);
  EXPECT_THROW((Momentum<float>{0.1, -0.1}), InvalidArgument);
  EXPECT_THROW((Adam<float>{0.1, 1.0}), InvalidArgument);
  EXPECT_THROW((Adam<float>{0.1, 0.9, kNaN}), InvalidArgument);
  EXPECT_THROW((Adam<float>{0.1, 0.9, 0.999, 0.0}), InvalidArgument);
  Sgd<float> sgd(0.1);
  std::vector<float> p(3), g(2), p2(2);
  EXPECT_THROW(sgd.update(p, g), InvalidArgument);
  sgd.update(p2, g);
  EXPECT_THROW(sgd.update(p, p), InvalidArgument);  // size changed after the first update
  Adam<float> adam(0.1);
  EXPECT_THROW(adam.set_state({1.0, 2.0}), InvalidArgument);
  EXPECT_THROW(sgd.set_state({1.0}), InvalidArgument);
}

// Records what it is told, and can be made to fail, to check the write-ahead order.
class RecordingAccountant : public PrivacyAccountant {
 public:
  void record(const DpStepRecord& step) override {
    if (fail) throw IoError("ledger disk full");
    steps.push_back(step);
  }
  std::vector<DpStepRecord> steps;
  bool fail = false;
};

DpSgdConfig test_config() {
  DpSgdConfig c;
  c.noise_multiplier = 1.3;
  c.sampling_rate = 0.01;
  c.expected_batch_size = 50.0;
  c.clip = ClipConfig::per_group({0.6, 0.8});  // sensitivity 1.0
  c.dataset_size = 5000;
  c.capacity = 80;
  return c;
}

TEST(DpSgd, AddsCalibratedNoiseDividesByExpectedBatchAndRecords) {
  RecordingAccountant accountant;
  DpSgd<double> dp(test_config(), std::make_unique<Sgd<double>>(1.0), 77, &accountant);
  EXPECT_DOUBLE_EQ(dp.noise_stddev(), 1.3);
  for (std::uint64_t step = 0; step < 3; ++step) {
    std::vector<double> params(1000, 0.0), grad(1000, 5.0);
    ASSERT_EQ(dp.next_step(), step);
    dp.step(params, grad);
    std::vector<double> expected(1000, 5.0);
    add_gaussian_noise<double>(expected, 1.3, NoiseKey{77, step, 0});
    for (std::size_t j = 0; j < 1000; ++j) {
      ASSERT_NEAR(grad[j], expected[j] / 50.0, 1e-15);
      ASSERT_NEAR(params[j], -expected[j] / 50.0, 1e-15);
    }
  }
  ASSERT_EQ(accountant.steps.size(), 3u);
  EXPECT_EQ(accountant.steps[2].step, 2u);
  EXPECT_EQ(accountant.steps[2].sampling_rate, 0.01);
  EXPECT_EQ(accountant.steps[2].noise_multiplier, 1.3);
  EXPECT_EQ(accountant.steps[2].dataset_size, 5000);
  EXPECT_EQ(accountant.steps[2].capacity, 80);
}

TEST(DpSgd, AFailedRecordReleasesNothing) {
  RecordingAccountant accountant;
  accountant.fail = true;
  DpSgd<float> dp(test_config(), std::make_unique<Sgd<float>>(1.0), 1, &accountant);
  std::vector<float> params(10, 1.0f), grad(10, 2.0f);
  EXPECT_THROW(dp.step(params, grad), IoError);
  EXPECT_EQ(params, std::vector<float>(10, 1.0f));
  EXPECT_EQ(dp.next_step(), 0u);
}

TEST(DpSgd, RejectsNonFiniteSumsAndBadSizes) {
  RecordingAccountant accountant;
  DpSgd<float> dp(test_config(), std::make_unique<Sgd<float>>(1.0), 1, &accountant);
  std::vector<float> params(4, 0.0f), grad{1.0f, static_cast<float>(kNaN), 0.0f, 0.0f}, short_grad(3, 0.0f);
  EXPECT_THROW(dp.step(params, grad), InvalidArgument);
  EXPECT_THROW(dp.step(params, short_grad), InvalidArgument);
  EXPECT_TRUE(accountant.steps.empty());
  EXPECT_EQ(params, std::vector<float>(4, 0.0f));
}

TEST(DpSgd, ResumeNeverReusesAStep) {
  DpSgd<float> dp(test_config(), std::make_unique<Sgd<float>>(1.0), 1);
  dp.resume_at(10);
  EXPECT_EQ(dp.next_step(), 10u);
  EXPECT_THROW(dp.resume_at(9), InvalidArgument);
}

TEST(DpSgd, RejectsBadConfig) {
  const auto make = [](DpSgdConfig c) { DpSgd<float> dp(c, std::make_unique<Sgd<float>>(1.0), 1); };
  DpSgdConfig c = test_config();
  for (double sigma : {-1.0, kNaN, std::numeric_limits<double>::infinity()}) {
    c = test_config();
    c.noise_multiplier = sigma;
    EXPECT_THROW(make(c), InvalidArgument) << sigma;
  }
  for (double q : {0.0, 1.5, kNaN}) {
    c = test_config();
    c.sampling_rate = q;
    EXPECT_THROW(make(c), InvalidArgument) << q;
  }
  for (double b : {0.0, -3.0, kNaN}) {
    c = test_config();
    c.expected_batch_size = b;
    EXPECT_THROW(make(c), InvalidArgument) << b;
  }
  c = test_config();
  c.clip = ClipConfig::flat(0.0);
  EXPECT_THROW(make(c), InvalidArgument);
  c = test_config();
  c.capacity = -1;
  EXPECT_THROW(make(c), InvalidArgument);
  EXPECT_THROW(DpSgd<float>(test_config(), nullptr, 1), InvalidArgument);
}

TEST(DpSgd, DefaultNoiseSeedComesFromTheOs) {
  DpSgd<float> a(test_config(), std::make_unique<Sgd<float>>(1.0)), b(test_config(), std::make_unique<Sgd<float>>(1.0));
  EXPECT_NE(a.noise_seed(), b.noise_seed());  // equal with probability 2^-64
}

TEST(DpSgd, ConfigFromTheSamplerChargesTruncation) {
  const PoissonSampler truncating(10000, 0.01, 150, 7);
  const DpSgdConfig config = DpSgdConfig::for_sampler(truncating, 1.1, ClipConfig::flat(2.0));
  EXPECT_EQ(config.sampling_rate, 0.01);
  EXPECT_DOUBLE_EQ(config.expected_batch_size, 100.0);
  EXPECT_EQ(config.dataset_size, 10000);
  EXPECT_EQ(config.capacity, 150);
  // A sampler that keeps every draw (capacity N) needs no charge.
  const DpSgdConfig full = DpSgdConfig::for_sampler(PoissonSampler(100, 0.1, 100, 7), 1.0, ClipConfig::flat(1.0));
  EXPECT_EQ(full.dataset_size, 0);
  EXPECT_EQ(full.capacity, 0);
}

TEST(DpSgd, TheCheckedStepRefusesABatchItsConfigDoesNotAccountFor) {
  const PoissonSampler sampler(10000, 0.01, 150, 7);
  RecordingAccountant accountant;
  std::vector<float> params(4, 0.0f), grad(4, 0.0f);
  // Negative control, the bug: a hand-made config that forgets the truncation.
  DpSgdConfig forgetful;
  forgetful.sampling_rate = 0.01;
  forgetful.expected_batch_size = 100.0;
  DpSgd<float> unsafe(forgetful, std::make_unique<Sgd<float>>(0.1), 3, &accountant);
  EXPECT_THROW(unsafe.step(params, grad, sampler.sample(0)), InvalidArgument);
  DpSgdConfig other_rate = DpSgdConfig::for_sampler(sampler, 1.0, ClipConfig::flat(1.0));
  other_rate.sampling_rate = 0.02;
  DpSgd<float> wrong_rate(other_rate, std::make_unique<Sgd<float>>(0.1), 3, &accountant);
  EXPECT_THROW(wrong_rate.step(params, grad, sampler.sample(0)), InvalidArgument);
  EXPECT_TRUE(accountant.steps.empty());  // refused before anything was recorded
  EXPECT_EQ(params, std::vector<float>(4, 0.0f));

  DpSgd<float> dp(DpSgdConfig::for_sampler(sampler, 1.0, ClipConfig::flat(1.0)), std::make_unique<Sgd<float>>(0.1), 3,
                  &accountant);
  EXPECT_THROW(dp.step(params, grad, sampler.sample(5)), InvalidArgument);  // not the next step
  dp.step(params, grad, sampler.sample(0));
  ASSERT_EQ(accountant.steps.size(), 1u);
  EXPECT_EQ(accountant.steps[0].dataset_size, 10000);
  EXPECT_EQ(accountant.steps[0].capacity, 150);
}

TEST(Optimizers, SeveralTensorsUpdateLikeTheirConcatenation) {
  const std::vector<double> grad_a{0.5, -1.0, 2.0}, grad_b{0.25, 3.0};
  const auto run = [&](Optimizer<double>& flat, Optimizer<double>& split) {
    std::vector<double> all(5, 1.0), a(3, 1.0), b(2, 1.0);
    std::vector<double> grad_all(grad_a);
    grad_all.insert(grad_all.end(), grad_b.begin(), grad_b.end());
    for (int t = 0; t < 3; ++t) {
      flat.update(all, grad_all);
      const std::vector<std::span<double>> params{a, b};
      const std::vector<std::span<const double>> grads{grad_a, grad_b};
      split.update(params, grads);
    }
    EXPECT_EQ(std::vector<double>(all.begin(), all.begin() + 3), a) << flat.name();
    EXPECT_EQ(std::vector<double>(all.begin() + 3, all.end()), b) << flat.name();
    EXPECT_EQ(flat.state(), split.state()) << flat.name();
  };
  Sgd<double> s1(0.1), s2(0.1);
  run(s1, s2);
  Momentum<double> m1(0.1, 0.9), m2(0.1, 0.9);
  run(m1, m2);
  Adam<double> a1(0.01), a2(0.01);  // one step count per update, not per tensor
  run(a1, a2);
  std::vector<double> x(3), y(4);
  const std::vector<std::span<double>> params{x};
  const std::vector<std::span<const double>> grads{y};
  EXPECT_THROW(a2.update(params, grads), InvalidArgument);
}

TEST(DpSgd, SeveralTensorsGetIndependentNoiseAndOneTensorMatchesTheFlatStep) {
  RecordingAccountant accountant;
  DpSgd<double> multi(test_config(), std::make_unique<Sgd<double>>(1.0), 77, &accountant);
  DpSgd<double> flat(test_config(), std::make_unique<Sgd<double>>(1.0), 77);
  std::vector<double> a(300, 0.0), b(200, 0.0), grad_a(300, 0.0), grad_b(200, 0.0);
  std::vector<double> flat_params(300, 0.0), flat_grad(300, 0.0);
  const std::vector<std::span<double>> params{a, b}, grads{grad_a, grad_b};
  multi.step(params, grads);
  flat.step(flat_params, flat_grad);
  // Tensor 0 gets exactly the single-tensor step's noise; tensor 1 gets stream 1, not a copy of it.
  EXPECT_EQ(a, flat_params);
  std::vector<double> expected_b(200, 0.0);
  add_gaussian_noise<double>(expected_b, 1.3, NoiseKey{77, 0, 1});
  for (std::size_t j = 0; j < 200; ++j) ASSERT_NEAR(b[j], -expected_b[j] / 50.0, 1e-15);
  EXPECT_NE(std::vector<double>(a.begin(), a.begin() + 200), b);  // negative control: not the same noise
  ASSERT_EQ(accountant.steps.size(), 1u);
  // A non-finite second tensor stops the step before anything is recorded or released.
  grad_b[7] = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> before_a = a;
  EXPECT_THROW(multi.step(params, grads), InvalidArgument);
  EXPECT_EQ(a, before_a);
  EXPECT_EQ(accountant.steps.size(), 1u);
  EXPECT_EQ(multi.next_step(), 1u);
  const std::vector<std::span<double>> too_few{a};
  EXPECT_THROW(multi.step(params, too_few), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd

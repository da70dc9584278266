// Tests of PoissonSampler: batch structure, determinism, edge rates, truncation, and bad arguments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"
#include "dpsgd/sampling/gather_batch.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace dpsgd {
namespace {

void expect_well_formed(const Batch& batch, const PoissonSampler& sampler) {
  ASSERT_EQ(batch.capacity(), sampler.capacity());
  ASSERT_EQ(batch.mask.size(), batch.indices.size());
  ASSERT_GE(batch.real_size, 0);
  ASSERT_LE(batch.real_size, sampler.capacity());
  ASSERT_GE(batch.truncated, 0);
  if (batch.truncated > 0) {
    ASSERT_EQ(batch.real_size, sampler.capacity());
  }
  for (std::int64_t i = 0; i < batch.capacity(); ++i) {
    const bool real = i < batch.real_size;
    ASSERT_EQ(batch.mask[i], real ? 1 : 0);
    if (real) {
      ASSERT_GE(batch.indices[i], 0);
      ASSERT_LT(batch.indices[i], sampler.dataset_size());
      if (i > 0) {
        ASSERT_LT(batch.indices[i - 1], batch.indices[i]);  // sorted, no duplicates
      }
    } else {
      ASSERT_EQ(batch.indices[i], Batch::kPaddingIndex);
    }
  }
}

TEST(PoissonSampler, BatchesAreWellFormed) {
  const PoissonSampler sampler(10000, 0.01, 150, 42);
  for (std::uint64_t step = 0; step < 200; ++step) expect_well_formed(sampler.sample(step), sampler);
}

TEST(PoissonSampler, DeterministicInSeedAndStepInAnyOrder) {
  const PoissonSampler a(5000, 0.02, 200, 7), b(5000, 0.02, 200, 7), other_seed(5000, 0.02, 200, 8);
  const Batch late = a.sample(1000);
  for (std::uint64_t step = 0; step < 20; ++step) (void)a.sample(step);
  EXPECT_EQ(late.indices, a.sample(1000).indices);
  EXPECT_EQ(late.indices, b.sample(1000).indices);
  EXPECT_NE(late.indices, a.sample(1001).indices);
  EXPECT_NE(late.indices, other_seed.sample(1000).indices);
}

TEST(PoissonSampler, RateOneTakesEveryExample) {
  const PoissonSampler sampler(100, 1.0, 100, 1);
  const Batch batch = sampler.sample(3);
  EXPECT_EQ(batch.real_size, 100);
  EXPECT_EQ(batch.truncated, 0);
  for (std::int64_t i = 0; i < 100; ++i) EXPECT_EQ(batch.indices[i], i);
}

TEST(PoissonSampler, TruncationKeepsCapacityAndCountsTheRest) {
  const PoissonSampler all(100, 1.0, 30, 1);
  const Batch batch = all.sample(0);
  EXPECT_EQ(batch.real_size, 30);
  EXPECT_EQ(batch.truncated, 70);
  expect_well_formed(batch, all);
}

TEST(PoissonSampler, TruncationDropsFromTheSamePoissonDraw) {
  // The membership stream does not depend on the capacity: a truncated batch is a subset of the
  // untruncated batch of the same (seed, step), and the counts add up.
  const PoissonSampler wide(2000, 0.05, 2000, 99), narrow(2000, 0.05, 90, 99);
  std::int64_t truncated_steps = 0;
  for (std::uint64_t step = 0; step < 300; ++step) {
    const Batch full = wide.sample(step);
    const Batch cut = narrow.sample(step);
    expect_well_formed(cut, narrow);
    ASSERT_EQ(full.truncated, 0);
    ASSERT_EQ(cut.real_size + cut.truncated, full.real_size) << step;
    const std::set<std::int64_t> members(full.indices.begin(), full.indices.begin() + full.real_size);
    for (std::int64_t i = 0; i < cut.real_size; ++i) ASSERT_TRUE(members.count(cut.indices[i])) << step;
    truncated_steps += cut.truncated > 0;
  }
  // Expected 100 per step, capacity 90: most steps truncate, which is what this test needs.
  EXPECT_GT(truncated_steps, 100);
}

TEST(PoissonSampler, TinyRateGivesMostlyEmptyBatches) {
  const PoissonSampler sampler(1000, 1e-9, 4, 5);
  std::int64_t members = 0;
  for (std::uint64_t step = 0; step < 1000; ++step) {
    const Batch batch = sampler.sample(step);
    expect_well_formed(batch, sampler);
    members += batch.real_size;
  }
  // Expected 1e-3 members over all steps: Pr[any] ~ 1e-3.
  EXPECT_LE(members, 1);
}

TEST(PoissonSampler, SingleExampleDataset) {
  const PoissonSampler sampler(1, 0.3, 1, 11);
  int hits = 0;
  for (std::uint64_t step = 0; step < 10000; ++step) {
    const Batch batch = sampler.sample(step);
    expect_well_formed(batch, sampler);
    hits += static_cast<int>(batch.real_size);
  }
  // Binomial(10000, 0.3): mean 3000, sd 45.8; 5 sd bound, false-failure probability 6e-7.
  EXPECT_NEAR(hits, 3000, 5 * 45.8);
}

TEST(PoissonSampler, ServesABillionExamples) {
  const PoissonSampler sampler(1'000'000'000, 1e-6, 1200, 3);
  const Batch batch = sampler.sample(0);
  expect_well_formed(batch, sampler);
  // Binomial(1e9, 1e-6): mean 1000, sd 31.6; 6 sd bound.
  EXPECT_NEAR(static_cast<double>(batch.real_size), 1000.0, 6 * 31.6);
  EXPECT_DOUBLE_EQ(sampler.expected_batch_size(), 1000.0);
  EXPECT_GT(sampler.truncation_probability(), 0.0);
  EXPECT_LT(sampler.truncation_probability(), 1e-6);
  EXPECT_DOUBLE_EQ(sampler.truncation_probability(), binomial_upper_tail(1'000'000'000, 1e-6, 1200));
}

TEST(PoissonSampler, RejectsBadArguments) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(PoissonSampler(0, 0.5, 1, 0), InvalidArgument);
  EXPECT_THROW(PoissonSampler(-5, 0.5, 1, 0), InvalidArgument);
  for (double q : {0.0, -0.1, 1.0000001, nan, inf, -inf})
    EXPECT_THROW(PoissonSampler(10, q, 5, 0), InvalidArgument) << q;
  EXPECT_THROW(PoissonSampler(10, 0.5, 0, 0), InvalidArgument);
  EXPECT_THROW(PoissonSampler(10, 0.5, -1, 0), InvalidArgument);
  EXPECT_THROW(PoissonSampler(10, 0.5, 11, 0), InvalidArgument);
  try {
    PoissonSampler(10, 1.5, 5, 0);
    FAIL() << "no exception";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("sampling_rate"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1.5"), std::string::npos) << e.what();
  }
}

TEST(GatherBatch, CopiesExamplesAndZeroesPadding) {
  RowMajorMatrix<float> data(5, 3);
  for (int i = 0; i < 15; ++i) data.data()[i] = static_cast<float>(i + 1);
  const std::vector<std::int32_t> labels{10, 11, 12, 13, 14};
  Batch batch;
  batch.indices = {1, 4, Batch::kPaddingIndex};
  batch.mask = {1, 1, 0};
  batch.real_size = 2;
  RowMajorMatrix<float> inputs = RowMajorMatrix<float>::Constant(3, 3, -1.0f);
  std::vector<std::int32_t> out(3, -1);
  gather_batch<float>(batch, data, labels, inputs, out);
  EXPECT_EQ(inputs.row(0), data.row(1));
  EXPECT_EQ(inputs.row(1), data.row(4));
  EXPECT_EQ(inputs.row(2).squaredNorm(), 0.0f);
  EXPECT_EQ(out, (std::vector<std::int32_t>{11, 14, 0}));
  batch.indices[0] = 7;
  EXPECT_THROW(gather_batch<float>(batch, data, labels, inputs, out), InvalidArgument);
  batch.indices[0] = 1;
  RowMajorMatrix<float> wrong(2, 3);
  EXPECT_THROW(gather_batch<float>(batch, data, labels, wrong, out), InvalidArgument);
  std::vector<std::int32_t> short_labels(4);
  EXPECT_THROW(gather_batch<float>(batch, data, short_labels, inputs, out), InvalidArgument);
}

TEST(PoissonSampler, DefaultSeedComesFromTheOs) {
  const PoissonSampler a(100, 0.5, 100), b(100, 0.5, 100);
  EXPECT_NE(a.seed(), b.seed());  // equal with probability 2^-64
}

}  // namespace
}  // namespace dpsgd

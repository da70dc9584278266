// PoissonSampler: geometric-gap Poisson sampling with reservoir truncation to the capacity.
#include "dpsgd/sampling/poisson_sampler.hpp"

#include <algorithm>
#include <cmath>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"
#include "dpsgd/noise/philox.hpp"
#include "dpsgd/noise/secure_seed.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

// 128-bit products for Lemire's bounded integers; __extension__ keeps -Wpedantic quiet about the GNU type.
__extension__ using Uint128 = unsigned __int128;

// Sequential draws from the Philox stream of one step: counter = (draw index, step).
class StepRandomStream {
 public:
  StepRandomStream(PhiloxKey key, std::uint64_t step) : key_(key), step_(step) {}

  std::uint64_t next_u64() {
    if (buffered_ == 0) {
      block_ = philox4x32_10(
          PhiloxCounter{{static_cast<std::uint32_t>(block_index_), static_cast<std::uint32_t>(block_index_ >> 32),
                         static_cast<std::uint32_t>(step_), static_cast<std::uint32_t>(step_ >> 32)}},
          key_);
      ++block_index_;
      buffered_ = 2;
    }
    --buffered_;
    const int word = buffered_ == 1 ? 0 : 2;
    return (static_cast<std::uint64_t>(block_.v[word]) << 32) | block_.v[word + 1];
  }

  // Uniform in (0, 1), never 0 or 1, from 52 bits.
  double next_open_uniform() {
    const std::uint64_t bits = next_u64();
    return uniform_open_from_bits(static_cast<std::uint32_t>(bits >> 32), static_cast<std::uint32_t>(bits));
  }

  // Uniform integer in [0, bound) without modulo bias (Lemire 2019, multiply-and-reject).
  std::uint64_t next_below(std::uint64_t bound) {
    Uint128 product = static_cast<Uint128>(next_u64()) * bound;
    auto low = static_cast<std::uint64_t>(product);
    if (low < bound) {
      const std::uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) {
        product = static_cast<Uint128>(next_u64()) * bound;
        low = static_cast<std::uint64_t>(product);
      }
    }
    return static_cast<std::uint64_t>(product >> 64);
  }

 private:
  PhiloxKey key_;
  std::uint64_t step_;
  std::uint64_t block_index_ = 0;
  PhiloxCounter block_{};
  int buffered_ = 0;
};

}  // namespace

PoissonSampler::PoissonSampler(std::int64_t dataset_size, double sampling_rate, std::int64_t capacity)
    : PoissonSampler(dataset_size, sampling_rate, capacity, secure_random_seed()) {}

PoissonSampler::PoissonSampler(std::int64_t dataset_size, double sampling_rate, std::int64_t capacity,
                               std::uint64_t seed)
    : dataset_size_(dataset_size), sampling_rate_(sampling_rate), capacity_(capacity), seed_(seed) {
  DPSGD_CHECK_ARG(dataset_size >= 1, "dataset_size must be >= 1, got " << dataset_size);
  validate_sampling_rate(sampling_rate);
  DPSGD_CHECK_ARG(capacity >= 1, "capacity must be >= 1, got " << capacity);
  // Slots beyond the dataset could never be filled; a larger capacity is almost surely a mix-up of
  // arguments, and would waste memory on padding every step.
  DPSGD_CHECK_ARG(capacity <= dataset_size,
                  "capacity must be <= dataset_size = " << dataset_size << ", got " << capacity);
}

double PoissonSampler::truncation_probability() const {
  return binomial_upper_tail(dataset_size_, sampling_rate_, capacity_);
}

Batch PoissonSampler::sample(std::uint64_t step) const {
  Batch batch;
  batch.step = step;
  batch.dataset_size = dataset_size_;
  batch.sampling_rate = sampling_rate_;
  batch.indices.reserve(static_cast<std::size_t>(capacity_));
  // Two independent streams: one decides membership, the other only which members a truncation
  // keeps, so the Poisson draw of a step is the same whatever the capacity.
  StepRandomStream membership(derive_philox_key(seed_, RandomDomain::kPoissonSampler), step);
  StepRandomStream truncation(derive_philox_key(seed_, RandomDomain::kPoissonTruncation), step);

  // Member k of the stream of draws; beyond the capacity, reservoir sampling (Vitter's algorithm R)
  // keeps a uniformly random subset of `capacity` of all draws in O(capacity) memory.
  std::int64_t drawn = 0;
  const auto offer = [&](std::int64_t index) {
    if (drawn < capacity_) {
      batch.indices.push_back(index);
    } else {
      const std::uint64_t slot = truncation.next_below(static_cast<std::uint64_t>(drawn) + 1);
      if (slot < static_cast<std::uint64_t>(capacity_)) batch.indices[slot] = index;
    }
    ++drawn;
  };

  if (sampling_rate_ == 1.0) {
    for (std::int64_t i = 0; i < dataset_size_; ++i) offer(i);
  } else {
    // The gap before the next member is Geometric(q): Pr[gap >= g] = (1 - q)^g, so
    // gap = floor(log U / log(1 - q)) for U uniform in (0, 1).
    const double log_keep = std::log1p(-sampling_rate_);
    std::int64_t index = -1;
    while (true) {
      const double gap = std::floor(std::log(membership.next_open_uniform()) / log_keep);
      if (gap >= static_cast<double>(dataset_size_ - 1 - index)) break;
      index += 1 + static_cast<std::int64_t>(gap);
      offer(index);
    }
  }

  batch.real_size = static_cast<std::int64_t>(batch.indices.size());
  batch.truncated = drawn - batch.real_size;
  std::sort(batch.indices.begin(), batch.indices.end());
  batch.indices.resize(static_cast<std::size_t>(capacity_), Batch::kPaddingIndex);
  batch.mask.assign(static_cast<std::size_t>(capacity_), 0);
  std::fill_n(batch.mask.begin(), batch.real_size, std::uint8_t{1});
  return batch;
}

}  // namespace dpsgd

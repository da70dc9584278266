// A user program built against the installed package: one DP-SGD step end to end.
#include <dpsgd/dpsgd.hpp>

#include <cstdio>
#include <vector>

int main() {
  const dpsgd::PoissonSampler sampler(1000, 0.05, 80, 1);
  const dpsgd::Batch batch = sampler.sample(0);
  dpsgd::RowMajorMatrix<float> grads = dpsgd::RowMajorMatrix<float>::Ones(batch.capacity(), 16);
  std::vector<float> sum(16, 0.0f), params(16, 0.0f);
  const auto clip = dpsgd::clip_and_accumulate<float>(grads, batch.mask, dpsgd::ClipConfig::flat(1.0), sum);
  dpsgd::DpSgdConfig config;
  config.sampling_rate = 0.05;
  config.expected_batch_size = 50.0;
  dpsgd::DpSgd<float> dp(config, std::make_unique<dpsgd::Sgd<float>>(0.1), 2);
  dp.step(params, sum);
  std::printf("consumer: %lld examples, %lld clipped, one DP step taken\n",
              static_cast<long long>(clip.stats.num_examples), static_cast<long long>(clip.stats.num_clipped));
  try {
    dpsgd::PoissonSampler bad(0, 0.5, 1, 0);
  } catch (const dpsgd::InvalidArgument&) {
    return 0;
  }
  return 1;
}

// A whole private training loop on dpsgd::TrainingRun: logistic regression on synthetic data.
// Usage: dpsgd_minimal RUN_DIRECTORY [--resume]
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "dpsgd/dpsgd.hpp"

int main(int argc, char** argv) try {
  if (argc < 2) return std::fprintf(stderr, "usage: %s RUN_DIRECTORY [--resume]\n", argv[0]), 2;
  constexpr std::int64_t kN = 2000, kFeatures = 10, kSteps = 200;
  // Synthetic private data: labels from a fixed linear rule.
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  dpsgd::RowMajorMatrix<float> x(kN, kFeatures);
  std::vector<float> y(kN);
  for (std::int64_t i = 0; i < kN; ++i) {
    for (std::int64_t j = 0; j < kFeatures; ++j) x(i, j) = normal(rng);
    y[i] = x(i, 0) + 0.5f * x(i, 1) > 0.0f ? 1.0f : 0.0f;
  }

  dpsgd::TrainingRunConfig config;
  config.directory = argv[1];
  config.start = argc > 2 && std::string(argv[2]) == "--resume" ? dpsgd::TrainingRunConfig::Start::kResume
                                                                : dpsgd::TrainingRunConfig::Start::kNew;
  config.dataset_size = kN;
  config.sampling_rate = 0.05;
  config.capacity = dpsgd::capacity_for_truncation_probability(kN, 0.05, 1e-12).capacity;
  config.noise_multiplier = 1.5;
  config.clip = dpsgd::ClipConfig::flat(1.0);
  config.steps = kSteps;
  dpsgd::TrainingRun run(config, std::make_unique<dpsgd::Sgd<float>>(0.5));
  for (const std::string& note : run.notes()) std::printf("note: %s\n", note.c_str());

  std::vector<float> w(kFeatures, 0.0f);
  if (!run.restored_parameters().empty()) w = run.restored_parameters();
  dpsgd::RowMajorMatrix<float> rows(config.capacity, kFeatures);  // per-example gradients
  std::vector<float> gradient(kFeatures);
  while (!run.finished()) {
    const dpsgd::Batch batch = run.next_batch();
    rows.setZero();
    for (std::int64_t slot = 0; slot < batch.real_size; ++slot) {
      const std::int64_t i = batch.indices[slot];
      const float p = 1.0f / (1.0f + std::exp(-x.row(i).dot(Eigen::Map<Eigen::VectorXf>(w.data(), kFeatures))));
      rows.row(slot) = (p - y[i]) * x.row(i);
    }
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    dpsgd::clip_and_accumulate<float>(rows, batch.mask, run.config().clip, gradient);
    run.step(w, gradient, batch);
    if (run.next_step() % 50 == 0) run.checkpoint(w);
  }
  std::printf("trained %llu steps, epsilon %.3f at delta 1e-5\n", static_cast<unsigned long long>(run.next_step()),
              run.epsilon(1e-5));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}

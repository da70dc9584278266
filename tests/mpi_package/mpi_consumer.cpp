// A user's training loop run data-parallel through dpsgd::mpi: a linear model's squared loss on
// synthetic data, each rank clipping its slots, rank 0 reporting the epsilon of the shared ledger.
#include <dpsgd/clipping/dense_clipping.hpp>
#include <dpsgd/mpi/distributed_run.hpp>
#include <dpsgd/mpi/session.hpp>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  dpsgd::mpi::Session session(argc, argv);
  return dpsgd::mpi::run_or_abort(MPI_COMM_WORLD, [&] {
    if (argc < 2) throw dpsgd::InvalidArgument("usage: mpi_consumer RUN_DIRECTORY");
    constexpr std::int64_t kN = 500, kDim = 4;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    dpsgd::RowMajorMatrix<float> x(kN, kDim);
    std::vector<float> y(kN);
    for (std::int64_t i = 0; i < kN; ++i) {
      for (std::int64_t j = 0; j < kDim; ++j) x(i, j) = normal(rng);
      y[static_cast<std::size_t>(i)] = x(i, 0) - x(i, 2);
    }
    dpsgd::TrainingRunConfig config;
    config.directory = argv[1];
    config.dataset_size = kN;
    config.sampling_rate = 0.1;
    config.capacity = 100;
    config.noise_multiplier = 1.0;
    config.steps = 30;
    dpsgd::mpi::DistributedRun run(MPI_COMM_WORLD, config, std::make_unique<dpsgd::Sgd<float>>(0.05));
    std::vector<float> w(kDim, 0.0f);
    while (!run.finished()) {
      const dpsgd::Batch batch = run.next_batch();
      const dpsgd::mpi::SlotRange mine = run.my_slots(batch);
      dpsgd::RowMajorMatrix<float> rows = dpsgd::RowMajorMatrix<float>::Zero(mine.size(), kDim);
      for (std::int64_t s = mine.begin; s < mine.end; ++s) {
        const std::int64_t i = batch.indices[static_cast<std::size_t>(s)];
        if (i == dpsgd::Batch::kPaddingIndex) continue;
        const float residual = x.row(i).dot(Eigen::Map<const Eigen::VectorXf>(w.data(), kDim)) - y[i];
        rows.row(s - mine.begin) = residual * x.row(i);
      }
      std::vector<float> gradient(kDim, 0.0f);
      dpsgd::clip_and_accumulate<float>(
          rows, std::span<const std::uint8_t>(batch.mask.data() + mine.begin, static_cast<std::size_t>(mine.size())),
          run.run().config().clip, gradient);
      run.step(w, gradient, batch);
    }
    run.checkpoint(w);
    if (run.writes())
      std::printf("%d ranks, 30 steps, epsilon %.3f at delta 1e-5\n", run.world_size(), run.epsilon(1e-5));
    return 0;
  });
}

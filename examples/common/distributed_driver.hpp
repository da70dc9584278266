// DistributedDriver: the StepDriver of a data-parallel run on dpsgd::mpi (examples built with MPI).
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/mpi/distributed_run.hpp"
#include "dpsgd/mpi/session.hpp"
#include "step_driver.hpp"

namespace dpsgd_example {

class DistributedDriver : public StepDriver {
 public:
  explicit DistributedDriver(dpsgd::mpi::DistributedRun& run) : run_(run) {}
  const dpsgd::TrainingRun& run() const override { return run_.run(); }
  std::pair<std::int64_t, std::int64_t> slots(const dpsgd::Batch& batch) const override {
    const dpsgd::mpi::SlotRange mine = run_.my_slots(batch);
    return {mine.begin, mine.end};
  }
  void step(std::span<float> params, std::span<float> gradient, const dpsgd::Batch& batch) override {
    run_.step(params, gradient, batch);
  }
  void step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients,
            const dpsgd::Batch& batch) override {
    run_.step(params, gradients, batch);
  }
  void checkpoint(std::span<const float> params, const nlohmann::json& extra) override {
    run_.checkpoint(params, extra);
  }
  bool stop_now(bool requested_here) const override { return run_.any_rank(requested_here); }
  bool reports() const override { return run_.writes(); }
  std::vector<double> release_sum(const dpsgd::RowSource&) override {
    throw dpsgd::InvalidArgument("a statistic release is not available in a distributed run yet");
  }

 private:
  dpsgd::mpi::DistributedRun& run_;
};

// Rank 0 plans the run (a new run's calibration, or a resumed run's own sigma and capacity: its
// directory is on rank 0's file system) and every rank gets the plan. Flat clipping (the examples').
inline dpsgd::TrainingRunConfig plan_on_rank0(MPI_Comm comm, const std::function<dpsgd::TrainingRunConfig()>& plan) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  dpsgd::TrainingRunConfig config;
  nlohmann::json shared;
  if (rank == 0) {
    config = plan();
    shared = {{"directory", config.directory},
              {"start", static_cast<int>(config.start)},
              {"dataset_size", config.dataset_size},
              {"sampling_rate", config.sampling_rate},
              {"capacity", config.capacity},
              {"noise_multiplier", config.noise_multiplier},
              {"clip_norm", config.clip.sensitivity()},
              {"steps", config.steps},
              {"settings", config.settings}};
  }
  shared = dpsgd::mpi::broadcast_json(comm, shared);
  if (rank != 0) {
    config.directory = shared["directory"].get<std::string>();
    config.start = static_cast<dpsgd::TrainingRunConfig::Start>(shared["start"].get<int>());
    config.dataset_size = shared["dataset_size"];
    config.sampling_rate = shared["sampling_rate"];
    config.capacity = shared["capacity"];
    config.noise_multiplier = shared["noise_multiplier"];
    config.clip = dpsgd::ClipConfig::flat(shared["clip_norm"].get<double>());
    config.steps = shared["steps"];
    config.settings = shared["settings"];
  }
  return config;
}

}  // namespace dpsgd_example

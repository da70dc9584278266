// How an example's process takes part in a run: alone, or as one rank of an MPI job (--distributed,
// where the example was built with dpsgd::mpi), and the training driver that goes with it.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/training_run.hpp"
#include "step_driver.hpp"
#ifdef DPSGD_EXAMPLE_HAS_MPI
#include "distributed_driver.hpp"
#include "dpsgd/mpi/session.hpp"
#endif

namespace dpsgd_example {

class TrainingProcess {
 public:
  // Starts MPI for a distributed run; ranks other than 0 print nothing on stdout (rank 0 reports).
  // Without MPI in the build the flag is refused later, by run_training, with the usual message.
  TrainingProcess(bool distributed, int& argc, char**& argv) : distributed_(distributed) {
#ifdef DPSGD_EXAMPLE_HAS_MPI
    if (distributed_) mpi_.emplace(argc, argv);
    reports_ = !mpi_ || mpi_->rank() == 0;
    if (!reports_) close_stdout();
#else
    (void)argc, (void)argv;
#endif
  }

  // Whether this process prints and writes the outputs: the only one, or rank 0.
  bool reports() const { return reports_; }
  // Rank 0's answer on every rank (checks made where the run's files are); alone, the answer itself.
  bool agreed(bool answer) const {
#ifdef DPSGD_EXAMPLE_HAS_MPI
    if (mpi_) return dpsgd::mpi::broadcast_json(MPI_COMM_WORLD, answer).get<bool>();
#endif
    return answer;
  }

  // Opens the run (planned by `plan`: on rank 0 only when distributed) and calls train(driver). When
  // distributed, an error on any rank ends the job on every rank.
  int run_training(const std::function<dpsgd::TrainingRunConfig()>& plan,
                   std::unique_ptr<dpsgd::Optimizer<float>> optimizer,
                   const std::function<int(StepDriver&)>& train) const {
    if (distributed_) {
#ifdef DPSGD_EXAMPLE_HAS_MPI
      const MPI_Comm comm = MPI_COMM_WORLD;
      return dpsgd::mpi::run_or_abort(comm, [&] {
        dpsgd::mpi::DistributedRun run(comm, plan_on_rank0(comm, plan), std::move(optimizer));
        DistributedDriver driver(run);
        return train(driver);
      });
#else
      throw dpsgd::InvalidArgument(
          "--distributed: this build has no MPI (install libopenmpi-dev and openmpi-bin, then rebuild)");
#endif
    }
    dpsgd::TrainingRun run(plan(), std::move(optimizer));
    LocalDriver driver(run);
    return train(driver);
  }

 private:
  // Other ranks print nothing: what a run may print, rank 0 prints once. A failed freopen leaves
  // stdout as it was (duplicate lines, nothing private), so its result needs no handling.
  static void close_stdout() { [[maybe_unused]] std::FILE* closed = std::freopen("/dev/null", "w", stdout); }

  bool distributed_ = false;
  bool reports_ = true;
#ifdef DPSGD_EXAMPLE_HAS_MPI
  std::optional<dpsgd::mpi::Session> mpi_;
#endif
};

}  // namespace dpsgd_example

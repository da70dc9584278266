// dpsgd::mpi::DistributedRun: one TrainingRun taken by several processes, data-parallel: every rank
// draws the same batch, clips its own slice of it, the clipped sums are summed across ranks, and every
// rank adds the same noise, so all ranks hold the same parameters; rank 0 writes ledger and checkpoints.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/batch.hpp"

namespace dpsgd::mpi {

// The ranks' parameters differ: a bug (a rank that trained on other data or skipped a step), never a
// rounding difference (the reduced sum is broadcast, so every rank applies the same bits).
class ReplicaDivergence : public Error {
 public:
  using Error::Error;
};

// Slots [begin, end) of a batch that one rank clips.
struct SlotRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - begin; }
};

// Rank r's contiguous share of `capacity` slots: sizes differ by at most one.
SlotRange slots_of_rank(std::int64_t capacity, int rank, int world_size);

class DistributedRun {
 public:
  // Collective over comm. Rank 0 opens the run as TrainingRun does (its directory, ledger and seed
  // are on rank 0's file system only; a new run's seed comes from rank 0's OS CSPRNG) and sends the
  // others what they need to be replicas (replica_state, and the checkpoint's parameters). Every rank
  // passes the same config (a replica opened with another mechanism or settings is refused). If rank
  // 0 cannot open the run, every rank throws (rank 0 its own error, the others one naming it).
  DistributedRun(MPI_Comm comm, TrainingRunConfig config, std::unique_ptr<Optimizer<float>> optimizer);

  int rank() const { return rank_; }
  int world_size() const { return size_; }
  // Rank 0: the one that writes files and may print what a run releases.
  bool writes() const { return rank_ == 0; }

  // The next step's batch (the same on every rank) and this rank's slots of it.
  Batch next_batch() const { return run_->next_batch(); }
  SlotRange my_slots(const Batch& batch) const;

  // Collective: gradient holds this rank's clipped sum over its slots; on return every rank holds
  // the same privatised mean gradient and has applied the same update. The sum across ranks is
  // formed on rank 0 in rank order and broadcast, so every rank applies identical bits.
  void step(std::span<float> params, std::span<float> gradient, const Batch& batch);
  void step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients, const Batch& batch);

  // Collective: checks that every rank holds the same parameters (ReplicaDivergence if not), then
  // rank 0 saves the checkpoint. Parameters are checked across all tensors in order.
  void checkpoint(std::span<const float> params, const nlohmann::json& extra = nlohmann::json::object());
  // Collective: throws ReplicaDivergence on every rank if any two ranks' parameters differ.
  void check_replicas_agree(std::span<const float> params) const;

  // Collective: true on every rank if `flag` is true on any (a stop asked of one rank, e.g. by a
  // signal that reached it alone, must stop all at the same step).
  bool any_rank(bool flag) const;

  bool finished() const { return run_->finished(); }
  std::uint64_t next_step() const { return run_->next_step(); }
  double epsilon(double delta, const AccountantOptions& options = {}) const { return run_->epsilon(delta, options); }
  const TrainingRun& run() const { return *run_; }
  bool resumed() const { return run_->resumed(); }
  const std::vector<std::string>& notes() const { return run_->notes(); }
  const std::vector<float>& restored_parameters() const { return run_->restored_parameters(); }
  const nlohmann::json& restored_extra() const { return run_->restored_extra(); }
  std::uint64_t initialisation_seed() const { return run_->initialisation_seed(); }
  // Bytes one step moves per rank: the gradient to rank 0 and the sum back (what docs/distributed.md
  // models), for `parameters` floats.
  static std::int64_t bytes_per_step(std::int64_t parameters) { return 2 * parameters * 4; }

 private:
  void reduce_to_all(std::span<float> values) const;

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<TrainingRun> run_;
  std::vector<float> packed_;  // several tensors' gradients, packed for one reduction
};

}  // namespace dpsgd::mpi

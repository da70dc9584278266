// DistributedRun: rank 0 owns the run's files and shares the secret state; every step sums the ranks'
// clipped sums on rank 0 and broadcasts the result, so all ranks apply the same noise to the same bits.
#include "dpsgd/mpi/distributed_run.hpp"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>

#include "chunked.hpp"
#include "dpsgd/core/checksum.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/mpi/session.hpp"

namespace dpsgd::mpi {
namespace {

// Rank 0's parameters (a checkpoint's, or none) on every rank.
void broadcast_floats(MPI_Comm comm, std::vector<float>& values) {
  unsigned long long size = values.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
  values.resize(size);
  detail::broadcast_chunked(comm, values.data(), values.size(), MPI_FLOAT);
}

// Whether every rank says ok.
bool all_agree(MPI_Comm comm, bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, comm);
  return all != 0;
}

}  // namespace

SlotRange slots_of_rank(std::int64_t capacity, int rank, int world_size) {
  DPSGD_CHECK_ARG(capacity >= 1, "capacity must be >= 1, got " << capacity);
  DPSGD_CHECK_ARG(world_size >= 1, "world_size must be >= 1, got " << world_size);
  DPSGD_CHECK_ARG(rank >= 0 && rank < world_size, "rank must be in [0, " << world_size << "), got " << rank);
  const auto share = [&](std::int64_t r) { return capacity * r / world_size; };
  return {share(rank), share(rank + 1)};
}

DistributedRun::DistributedRun(MPI_Comm comm, TrainingRunConfig config, std::unique_ptr<Optimizer<float>> optimizer)
    : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // Rank 0 opens the run; the outcome (its error, or the state replicas need) goes to every rank.
  nlohmann::json opened;
  std::exception_ptr failure;
  std::vector<float> parameters;
  if (rank_ == 0) {
    try {
      run_ = std::make_unique<TrainingRun>(config, std::move(optimizer));
      opened = {{"state", run_->replica_state()}};
      parameters = run_->restored_parameters();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      opened = {{"error", e.what()}};
    }
  }
  opened = broadcast_json(comm_, opened);
  if (opened.contains("error")) {
    if (failure) std::rethrow_exception(failure);
    throw Error("dpsgd::mpi: rank 0 could not open the run: " + opened["error"].get<std::string>());
  }
  broadcast_floats(comm_, parameters);
  // The replicas: each checks that it was started with the writer's mechanism and settings.
  std::string refusal;
  if (rank_ != 0) {
    try {
      run_ = TrainingRun::replica(std::move(config), opened["state"], std::move(parameters), std::move(optimizer));
    } catch (const std::exception& e) {
      refusal = e.what();
    }
  }
  if (!all_agree(comm_, refusal.empty())) {
    if (!refusal.empty()) throw InvalidArgument("dpsgd::mpi: rank " + std::to_string(rank_) + ": " + refusal);
    throw InvalidArgument("dpsgd::mpi: another rank refused to join the run (its message says why)");
  }
}

SlotRange DistributedRun::my_slots(const Batch& batch) const {
  return slots_of_rank(static_cast<std::int64_t>(batch.indices.size()), rank_, size_);
}

void DistributedRun::reduce_to_all(std::span<float> values) const {
  // In place on rank 0 (no second buffer, no copy), then rank 0's total to every rank.
  for (std::size_t at = 0; at < values.size(); at += detail::kChunk) {
    const int count = static_cast<int>(std::min(detail::kChunk, values.size() - at));
    float* chunk = values.data() + at;
    MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : chunk, chunk, count, MPI_FLOAT, MPI_SUM, 0, comm_);
  }
  detail::broadcast_chunked(comm_, values.data(), values.size(), MPI_FLOAT);
}

void DistributedRun::step(std::span<float> params, std::span<float> gradient, const Batch& batch) {
  reduce_to_all(gradient);
  run_->step(params, gradient, batch);
}

void DistributedRun::step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients,
                          const Batch& batch) {
  std::size_t total = 0;
  for (const std::span<float>& g : gradients) total += g.size();
  packed_.resize(total);
  float* at = packed_.data();
  for (const std::span<float>& g : gradients) at = std::copy(g.begin(), g.end(), at);
  reduce_to_all(packed_);
  const float* from = packed_.data();
  for (const std::span<float>& g : gradients) {
    std::copy_n(from, g.size(), g.begin());
    from += g.size();
  }
  run_->step(params, gradients, batch);
}

bool DistributedRun::any_rank(bool flag) const {
  int mine = flag ? 1 : 0, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_LOR, comm_);
  return any != 0;
}

void DistributedRun::check_replicas_agree(std::span<const float> params) const {
  // The checksum the run's files use, over the parameters' bytes; every rank compares with rank 0's.
  const std::string mine =
      fnv1a64_checksum(std::string(reinterpret_cast<const char*>(params.data()), params.size_bytes()));
  if (!all_agree(comm_, broadcast_json(comm_, mine).get<std::string>() == mine)) {
    throw ReplicaDivergence("dpsgd::mpi: the ranks' parameters differ at step " + std::to_string(run_->next_step()) +
                            " (a rank trained on other data or code); stopped before saving: resume from the last "
                            "checkpoint");
  }
}

void DistributedRun::checkpoint(std::span<const float> params, const nlohmann::json& extra) {
  check_replicas_agree(params);
  std::string error;
  if (rank_ == 0) {
    try {
      run_->checkpoint(params, extra);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  // Every rank learns whether the checkpoint was written, so all stop together if it was not.
  if (!all_agree(comm_, error.empty())) {
    throw IoError(rank_ == 0 ? error : "dpsgd::mpi: rank 0 could not save the checkpoint (its message says why)");
  }
}

}  // namespace dpsgd::mpi

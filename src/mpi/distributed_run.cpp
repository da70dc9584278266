// DistributedRun: rank 0 owns the run's files and shares the secret state; every step sums the ranks'
// clipped sums on rank 0 and broadcasts the result, so all ranks apply the same noise to the same bits.
#include "dpsgd/mpi/distributed_run.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include "dpsgd/core/error.hpp"

namespace dpsgd::mpi {
namespace {

// MPI counts are int: large buffers go in chunks.
constexpr std::size_t kChunk = std::size_t{1} << 28;

void broadcast_bytes(MPI_Comm comm, std::string& bytes) {
  unsigned long long size = bytes.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
  bytes.resize(size);
  for (std::size_t at = 0; at < size; at += kChunk)
    MPI_Bcast(bytes.data() + at, static_cast<int>(std::min<std::size_t>(kChunk, size - at)), MPI_CHAR, 0, comm);
}

void broadcast_floats(MPI_Comm comm, std::vector<float>& values) {
  unsigned long long size = values.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
  values.resize(size);
  for (std::size_t at = 0; at < size; at += kChunk)
    MPI_Bcast(values.data() + at, static_cast<int>(std::min<std::size_t>(kChunk, size - at)), MPI_FLOAT, 0, comm);
}

// Whether every rank says ok.
bool all_agree(MPI_Comm comm, bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, comm);
  return all != 0;
}

// FNV-1a over the parameters' bytes: equal parameters give equal hashes on every rank.
std::uint64_t hash_of(std::span<const float> values) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  for (std::size_t k = 0; k < values.size_bytes(); ++k) hash = (hash ^ bytes[k]) * 0x100000001b3ULL;
  return hash;
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
  std::string shared;
  std::exception_ptr failure;
  std::vector<float> parameters;
  if (rank_ == 0) {
    try {
      run_ = std::make_unique<TrainingRun>(config, std::move(optimizer));
      shared = "ok" + run_->replica_state().dump();
      parameters = run_->restored_parameters();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      shared = std::string("error") + e.what();
    }
  }
  broadcast_bytes(comm_, shared);
  if (shared.rfind("ok", 0) != 0) {
    if (failure) std::rethrow_exception(failure);
    throw Error("dpsgd::mpi: rank 0 could not open the run: " + shared.substr(5));
  }
  broadcast_floats(comm_, parameters);
  // The replicas: each checks that it was started with the writer's mechanism and settings.
  std::string refusal;
  if (rank_ != 0) {
    try {
      run_ = TrainingRun::replica(std::move(config), nlohmann::json::parse(shared.substr(2)), std::move(parameters),
                                  std::move(optimizer));
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
  incoming_.resize(rank_ == 0 ? values.size() : 0);
  for (std::size_t at = 0; at < values.size(); at += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, values.size() - at));
    MPI_Reduce(values.data() + at, rank_ == 0 ? incoming_.data() + at : nullptr, count, MPI_FLOAT, MPI_SUM, 0, comm_);
  }
  if (rank_ == 0) std::copy(incoming_.begin(), incoming_.end(), values.begin());
  for (std::size_t at = 0; at < values.size(); at += kChunk)
    MPI_Bcast(values.data() + at, static_cast<int>(std::min(kChunk, values.size() - at)), MPI_FLOAT, 0, comm_);
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
  const std::uint64_t hash = hash_of(params);
  std::uint64_t mine[2] = {hash, ~hash}, top[2] = {0, 0};
  MPI_Allreduce(mine, top, 2, MPI_UINT64_T, MPI_MAX, comm_);
  if (top[0] != hash || ~top[1] != hash) {
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

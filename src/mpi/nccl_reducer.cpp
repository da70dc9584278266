// NcclReducer: NCCL's communicator set up through MPI, and the reduce-then-broadcast sum of a step.
#include "dpsgd/mpi/nccl_reducer.hpp"

#include <string>

#include "dpsgd/core/error.hpp"

namespace dpsgd::mpi {
namespace {

void check_cuda(cudaError_t status, int rank, const char* what) {
  if (status != cudaSuccess)
    throw Error("dpsgd::mpi: rank " + std::to_string(rank) + ": " + what + ": " + cudaGetErrorString(status));
}

void check_nccl(ncclResult_t status, int rank, const char* what) {
  if (status != ncclSuccess)
    throw Error("dpsgd::mpi: rank " + std::to_string(rank) + ": " + what + ": " + ncclGetErrorString(status));
}

}  // namespace

int visible_cuda_devices() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

NcclReducer::NcclReducer(MPI_Comm comm, int device) {
  int size = 1;
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size);
  ncclUniqueId id{};
  if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), rank_, "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm);
  check_cuda(cudaSetDevice(device), rank_, "cudaSetDevice");
  check_nccl(ncclCommInitRank(&comm_, size, id, rank_), rank_, "ncclCommInitRank");
}

NcclReducer::~NcclReducer() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

void NcclReducer::sum_to_all(float* values, std::size_t count, cudaStream_t stream) {
  check_nccl(ncclReduce(values, values, count, ncclFloat, ncclSum, 0, comm_, stream), rank_, "ncclReduce");
  check_nccl(ncclBroadcast(values, values, count, ncclFloat, 0, comm_, stream), rank_, "ncclBroadcast");
}

}  // namespace dpsgd::mpi

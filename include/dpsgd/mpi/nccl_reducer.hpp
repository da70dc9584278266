// dpsgd::mpi::NcclReducer: the cross-rank sum of a step's clipped gradients on GPUs, over NCCL, with
// the same contract as DistributedRun's CPU sum (built where the CUDA toolkit brings NCCL).
#pragma once

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstddef>

namespace dpsgd::mpi {

class NcclReducer {
 public:
  // Collective over comm: rank 0 creates the NCCL id, MPI carries it to the others, and each rank
  // joins on `device` (one GPU per rank). Throws dpsgd::Error naming the rank on a CUDA or NCCL error.
  NcclReducer(MPI_Comm comm, int device);
  NcclReducer(const NcclReducer&) = delete;
  NcclReducer& operator=(const NcclReducer&) = delete;
  ~NcclReducer();

  // Collective: values (count floats in device memory) := the sum over ranks, formed on rank 0
  // (ncclReduce) and broadcast (ncclBroadcast), so every rank holds identical bits, as on the CPU
  // path; enqueued on `stream`.
  void sum_to_all(float* values, std::size_t count, cudaStream_t stream);

  int rank() const { return rank_; }

 private:
  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
};

// The number of CUDA devices this process can see (0 without a driver or a GPU).
int visible_cuda_devices();

}  // namespace dpsgd::mpi

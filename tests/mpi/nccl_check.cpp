// The NCCL sum across ranks: every rank contributes its rank + 1 in each entry and must read back the
// identical total, 1 + 2 + ... + W. Needs one GPU per rank; exits 77 (skipped) where there are fewer.
#include <cstdio>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/mpi/nccl_reducer.hpp"
#include "dpsgd/mpi/session.hpp"

int main(int argc, char** argv) {
  dpsgd::mpi::Session session(argc, argv);
  const int devices = dpsgd::mpi::visible_cuda_devices();
  if (devices < session.world_size()) {
    if (session.rank() == 0)
      std::printf("nccl_check: skipped: %d GPU(s) visible, %d ranks need one each\n", devices, session.world_size());
    return 77;
  }
  return dpsgd::mpi::run_or_abort(MPI_COMM_WORLD, [&] {
    dpsgd::mpi::NcclReducer reducer(MPI_COMM_WORLD, session.rank());
    const std::size_t count = 1000003;  // not a multiple of any chunk size
    std::vector<float> host(count, static_cast<float>(session.rank() + 1));
    float* device = nullptr;
    cudaMalloc(&device, count * sizeof(float));
    cudaMemcpy(device, host.data(), count * sizeof(float), cudaMemcpyHostToDevice);
    reducer.sum_to_all(device, count, nullptr);
    cudaMemcpy(host.data(), device, count * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(device);
    const float expected = static_cast<float>(session.world_size() * (session.world_size() + 1) / 2);
    for (const float v : host) {
      if (v != expected)
        throw dpsgd::Error("NCCL sum is " + std::to_string(v) + ", expected " + std::to_string(expected));
    }
    if (session.rank() == 0) std::printf("nccl_check: %d ranks agree on the sum\n", session.world_size());
    return 0;
  });
}

// Internal: turns CUDA runtime errors into dpsgd::CudaError naming the call and the code.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "dpsgd/core/error.hpp"

namespace dpsgd::cuda::detail {

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    throw CudaError(std::string(call) + " failed with " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                    ") at " + file + ":" + std::to_string(line));
  }
}

}  // namespace dpsgd::cuda::detail

#define DPSGD_CUDA_CHECK(call) ::dpsgd::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)

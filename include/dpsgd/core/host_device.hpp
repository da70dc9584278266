// DPSGD_HOST_DEVICE: marks inline math shared by the CPU path and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define DPSGD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DPSGD_HOST_DEVICE inline
#endif

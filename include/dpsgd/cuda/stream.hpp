// Stream and BlasHandle: the CUDA stream and cuBLAS handle types, named without including CUDA headers.
#pragma once

struct CUstream_st;
struct cublasContext;

namespace dpsgd::cuda {

// Same type as cudaStream_t; nullptr is the legacy default stream.
using Stream = CUstream_st*;
// Same type as cublasHandle_t.
using BlasHandle = cublasContext*;

}  // namespace dpsgd::cuda

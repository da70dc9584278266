// gemm_backend: which library computes the library's single-precision matrix products (sgemm).
#pragma once

#include <string>

namespace dpsgd {

// With the BLAS build (DPSGD_USE_BLAS, the default) Eigen hands every large float product to sgemm_,
// which dpsgd routes to oneDNN's dnnl_sgemm when libdnnl.so.2 can be loaded (faster on the layers'
// shapes, docs/benchmarks.md) and to the linked BLAS (OpenBLAS) otherwise. The environment variable
// DPSGD_GEMM=openblas or DPSGD_GEMM=onednn chooses explicitly (onednn falls back, with a message on
// stderr, when oneDNN cannot be loaded). Returns "onednn", "openblas", or "eigen" for a build
// without BLAS. Decided once, at the first product.
std::string gemm_backend();

}  // namespace dpsgd

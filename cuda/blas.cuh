// Internal: cuBLAS status checks and range-checked GEMM wrappers for float and double.
#pragma once

#include <cublas_v2.h>

#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "dpsgd/core/error.hpp"

namespace dpsgd::cuda::detail {

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw CudaError(std::string(call) + " failed with " + cublasGetStatusName(status) + " (" +
                    cublasGetStatusString(status) + ") at " + file + ":" + std::to_string(line));
  }
}

// cuBLAS takes int sizes: anything larger must be refused, not truncated.
inline int blas_int(std::int64_t value, const char* what) {
  DPSGD_CHECK_ARG(value >= 0 && value <= INT_MAX,
                  what << " = " << value << " is outside the range cuBLAS accepts, [0, " << INT_MAX << "]");
  return static_cast<int>(value);
}

}  // namespace dpsgd::cuda::detail

#define DPSGD_CUBLAS_CHECK(call) ::dpsgd::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)

namespace dpsgd::cuda::detail {

// Column-major C = alpha op(A) op(B) + beta C, as cuBLAS defines it, for float (Sgemm) or double
// (Dgemm); sizes are range-checked.
template <typename Scalar>
void gemm(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, Scalar alpha, const Scalar* a, std::int64_t lda, const Scalar* b, std::int64_t ldb,
          Scalar beta, Scalar* c, std::int64_t ldc) {
  const auto call = [&](auto blas_gemm, const char* name) {
    check_cublas(blas_gemm(handle, trans_a, trans_b, blas_int(m, "m"), blas_int(n, "n"), blas_int(k, "k"), &alpha, a,
                           blas_int(lda, "lda"), b, blas_int(ldb, "ldb"), &beta, c, blas_int(ldc, "ldc")),
                 name, __FILE__, __LINE__);
  };
  if constexpr (std::is_same_v<Scalar, float>) {
    call(cublasSgemm, "cublasSgemm");
  } else {
    call(cublasDgemm, "cublasDgemm");
  }
}

// The same for `count` independent products whose operands lie `stride_*` elements apart.
template <typename Scalar>
void gemm_strided_batched(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b, std::int64_t m,
                          std::int64_t n, std::int64_t k, Scalar alpha, const Scalar* a, std::int64_t lda,
                          std::int64_t stride_a, const Scalar* b, std::int64_t ldb, std::int64_t stride_b, Scalar beta,
                          Scalar* c, std::int64_t ldc, std::int64_t stride_c, std::int64_t count) {
  const auto call = [&](auto blas_gemm, const char* name) {
    check_cublas(blas_gemm(handle, trans_a, trans_b, blas_int(m, "m"), blas_int(n, "n"), blas_int(k, "k"), &alpha, a,
                           blas_int(lda, "lda"), stride_a, b, blas_int(ldb, "ldb"), stride_b, &beta, c,
                           blas_int(ldc, "ldc"), stride_c, blas_int(count, "batch count")),
                 name, __FILE__, __LINE__);
  };
  if constexpr (std::is_same_v<Scalar, float>) {
    call(cublasSgemmStridedBatched, "cublasSgemmStridedBatched");
  } else {
    call(cublasDgemmStridedBatched, "cublasDgemmStridedBatched");
  }
}

}  // namespace dpsgd::cuda::detail

// sgemm_ for Eigen's BLAS calls: oneDNN's dnnl_sgemm when it can be loaded, else the linked BLAS.
//
// Eigen (EIGEN_USE_BLAS) calls the Fortran symbol sgemm_ for every large float product. Defined here,
// in the library the program links statically, it comes before the shared BLAS's own sgemm_ in
// symbol resolution; the BLAS's one is still reached with dlsym(RTLD_NEXT). oneDNN is loaded with
// dlopen, so neither the library nor its users link against it, and a machine without it runs on
// OpenBLAS as before. Both compute the same product; the choice is speed (docs/benchmarks.md).
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/gemm_backend.hpp"

#ifdef EIGEN_USE_BLAS
namespace {

using FortranSgemm = int (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                             const int*, const float*, const int*, const float*, float*, const int*);
// dnnl_sgemm: row-major, 64-bit dimensions; returns dnnl_success (0) or an error status.
using DnnlSgemm = int (*)(char, char, std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                          const float*, std::int64_t, float, float*, std::int64_t);

struct Backend {
  FortranSgemm blas = nullptr;  // the next sgemm_ in load order: the linked BLAS
  DnnlSgemm onednn = nullptr;   // null: use blas
};

Backend choose() {
  Backend b;
  b.blas = reinterpret_cast<FortranSgemm>(dlsym(RTLD_NEXT, "sgemm_"));
  const char* wanted = std::getenv("DPSGD_GEMM");
  const bool ask_blas = wanted != nullptr && std::strcmp(wanted, "openblas") == 0;
  const bool ask_onednn = wanted != nullptr && std::strcmp(wanted, "onednn") == 0;
  if (wanted != nullptr && !ask_blas && !ask_onednn)
    std::fprintf(stderr, "dpsgd: DPSGD_GEMM=%s is not openblas or onednn; choosing by availability\n", wanted);
  if (!ask_blas || b.blas == nullptr) {
    if (void* dnnl = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL)) {
      b.onednn = reinterpret_cast<DnnlSgemm>(dlsym(dnnl, "dnnl_sgemm"));
    }
    if (b.onednn == nullptr && ask_onednn)
      std::fprintf(stderr, "dpsgd: DPSGD_GEMM=onednn, but libdnnl.so.2 cannot be loaded; using the linked BLAS\n");
  }
  // Unreachable in a BLAS build (the BLAS is linked), but a product with nowhere to go must not crash.
  if (b.blas == nullptr && b.onednn == nullptr)
    throw dpsgd::Error("dpsgd: no sgemm found (neither the linked BLAS nor oneDNN's libdnnl.so.2)");
  return b;
}

const Backend& backend() {
  static const Backend chosen = choose();
  return chosen;
}

}  // namespace

// Column-major C (m x n) = op(A) op(B) is row-major C^T (n x m) = op(B)^T op(A)^T: the same buffers
// with the operands swapped, which is how dnnl_sgemm (row-major) computes Eigen's column-major call.
extern "C" int sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                      const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                      const float* beta, float* c, const int* ldc) {
  const Backend& use = backend();
  if (use.onednn != nullptr && use.onednn(*transb, *transa, *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c, *ldc) == 0)
    return 0;
  // No oneDNN, or it refused the arguments: the BLAS reports them as the reference BLAS would.
  return use.blas(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace dpsgd {

std::string gemm_backend() { return backend().onednn != nullptr ? "onednn" : "openblas"; }

}  // namespace dpsgd
#else
namespace dpsgd {

std::string gemm_backend() { return "eigen"; }  // a build without BLAS: Eigen's own kernels

}  // namespace dpsgd
#endif

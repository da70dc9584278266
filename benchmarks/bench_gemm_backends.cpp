// The single-precision GEMMs of dpsgd's layers on every CPU GEMM library Debian has: OpenBLAS (the
// default build's), BLIS, oneDNN, libxsmm, and Eigen's own kernels, at 1 and 2 threads.
//
// Each library is loaded at run time from its Debian path (dlopen, RTLD_LOCAL: OpenBLAS and BLIS
// both export cblas_sgemm, and each must be called by its own name); a library that is not installed
// is skipped with a message. This program does not link dpsgd, so Eigen's products here are Eigen's
// own kernels (the library build routes them to OpenBLAS with EIGEN_USE_BLAS).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <omp.h>

#include <Eigen/Core>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#ifdef DPSGD_HAVE_LIBXSMM
#include <libxsmm.h>
#endif

namespace {

// One product C = op(A) op(B) in row-major storage, op = transpose where asked.
struct Shape {
  const char* name;
  int m, n, k;
  bool trans_a, trans_b;
};

// The layers' products (Linear: Y = X W^T, dX = dY W, the clipped weight gradient dW = (c dY)^T X;
// the tanh CNN's convolutions as im2col products), at batch 256 and 1024.
std::vector<Shape> layer_shapes() {
  std::vector<Shape> shapes;
  const auto linear = [&](const char* layer, int batch, int in, int out) {
    static std::vector<std::string> names;  // the Shape keeps a pointer to its name
    for (const char* kind : {"forward", "input_grad", "weight_grad"}) {
      names.push_back(std::string(layer) + "/" + kind + "/B" + std::to_string(batch));
    }
    const std::size_t last = names.size();
    shapes.push_back({names[last - 3].c_str(), batch, out, in, false, true});
    shapes.push_back({names[last - 2].c_str(), batch, in, out, false, false});
    shapes.push_back({names[last - 1].c_str(), out, in, batch, true, false});
  };
  for (int batch : {256, 1024}) {
    linear("mlp784x512", batch, 784, 512);
    linear("mlp512x256", batch, 512, 256);
    linear("mlp3072x1024", batch, 3072, 1024);
    linear("mlp1024x1024", batch, 1024, 1024);
  }
  // The classifier layers (10 outputs): products too small for a library to shine.
  linear("logreg784x10", 256, 784, 10);
  // Tanh CNN at batch 256: conv1 (196 positions x 64 patch values -> 16 channels), conv2 (25 x 256 -> 32).
  shapes.push_back({"cnn_conv1/forward/B256", 256 * 196, 16, 64, false, true});
  shapes.push_back({"cnn_conv1/weight_grad/B256", 16, 64, 256 * 196, true, false});
  shapes.push_back({"cnn_conv2/forward/B256", 256 * 25, 32, 256, false, true});
  shapes.push_back({"cnn_conv2/input_grad/B256", 256 * 25, 256, 32, false, false});
  shapes.push_back({"cnn_conv2/weight_grad/B256", 32, 256, 256 * 25, true, false});
  return shapes;
}

using Gemm = std::function<void(const Shape&, const float*, const float*, float*)>;

struct Backend {
  std::string name;
  Gemm gemm;
  std::function<void(int)> set_threads;
};

// Leading dimensions of row-major op(A) (m x k) and op(B) (k x n).
int lda_of(const Shape& s) { return s.trans_a ? s.m : s.k; }
int ldb_of(const Shape& s) { return s.trans_b ? s.k : s.n; }

void* open_library(const char* path) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) std::fprintf(stderr, "skipped: %s (%s)\n", path, dlerror());
  return handle;
}

// CBLAS (OpenBLAS, BLIS): the standard enum values, row-major.
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                            int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// One CBLAS row-major call for a shape.
Gemm cblas_gemm(CblasSgemm sgemm) {
  return [sgemm](const Shape& s, const float* a, const float* b, float* c) {
    sgemm(kRowMajor, s.trans_a ? kTrans : kNoTrans, s.trans_b ? kTrans : kNoTrans, s.m, s.n, s.k, 1.0f, a, lda_of(s), b,
          ldb_of(s), 0.0f, c, s.n);
  };
}

std::optional<Backend> openblas_backend() {
  void* handle = open_library("libopenblas.so.0");
  if (handle == nullptr) return std::nullopt;
  const auto sgemm = reinterpret_cast<CblasSgemm>(dlsym(handle, "cblas_sgemm"));
  const auto threads = reinterpret_cast<void (*)(int)>(dlsym(handle, "openblas_set_num_threads"));
  if (sgemm == nullptr) return std::nullopt;
  return Backend{"OpenBLAS", cblas_gemm(sgemm), [threads](int t) {
                   omp_set_num_threads(t);
                   if (threads != nullptr) threads(t);
                 }};
}

// BLIS takes its thread count as a dim_t (int64) in the 32-bit-integer build too.
std::optional<Backend> blis_backend() {
  void* handle = open_library("/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4");
  if (handle == nullptr) return std::nullopt;
  const auto sgemm = reinterpret_cast<CblasSgemm>(dlsym(handle, "cblas_sgemm"));
  const auto threads = reinterpret_cast<void (*)(std::int64_t)>(dlsym(handle, "bli_thread_set_num_threads"));
  if (sgemm == nullptr || threads == nullptr) return std::nullopt;
  return Backend{"BLIS", cblas_gemm(sgemm), [threads](int t) {
                   omp_set_num_threads(t);
                   threads(t);
                 }};
}

// oneDNN's dnnl_sgemm: row-major, 64-bit dimensions, threads from the OpenMP runtime.
std::optional<Backend> onednn_backend() {
  void* handle = open_library("libdnnl.so.2");
  if (handle == nullptr) return std::nullopt;
  using DnnlSgemm = int (*)(char, char, std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                            const float*, std::int64_t, float, float*, std::int64_t);
  const auto sgemm = reinterpret_cast<DnnlSgemm>(dlsym(handle, "dnnl_sgemm"));
  if (sgemm == nullptr) return std::nullopt;
  return Backend{"oneDNN",
                 [sgemm](const Shape& s, const float* a, const float* b, float* c) {
                   sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, 1.0f, a, lda_of(s), b, ldb_of(s),
                         0.0f, c, s.n);
                 },
                 [](int t) { omp_set_num_threads(t); }};
}

// Eigen's own GEMM kernels (this program is built without EIGEN_USE_BLAS), parallel with OpenMP.
Backend eigen_backend() {
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Backend{"Eigen",
                 [](const Shape& s, const float* a, const float* b, float* c) {
                   const Eigen::Map<const Rows> A(a, s.trans_a ? s.k : s.m, s.trans_a ? s.m : s.k);
                   const Eigen::Map<const Rows> B(b, s.trans_b ? s.n : s.k, s.trans_b ? s.k : s.n);
                   Eigen::Map<Rows> C(c, s.m, s.n);
                   if (s.trans_a) {
                     C.noalias() = A.transpose() * B;
                   } else if (s.trans_b) {
                     C.noalias() = A * B.transpose();
                   } else {
                     C.noalias() = A * B;
                   }
                 },
                 [](int t) {
                   omp_set_num_threads(t);
                   Eigen::setNbThreads(t);
                 }};
}

#ifdef DPSGD_HAVE_LIBXSMM
// libxsmm's BLAS-like entry (column-major): row-major C = op(A) op(B) is column-major C^T = op(B)^T
// op(A)^T. Above its small-matrix threshold libxsmm hands the call to the process's sgemm_.
Backend libxsmm_backend() {
  return Backend{"libxsmm",
                 [](const Shape& s, const float* a, const float* b, float* c) {
                   const char ta = s.trans_b ? 'T' : 'N', tb = s.trans_a ? 'T' : 'N';
                   const libxsmm_blasint m = s.n, n = s.m, k = s.k, lda = ldb_of(s), ldb = lda_of(s), ldc = s.n;
                   const float alpha = 1.0f, beta = 0.0f;
                   libxsmm_sgemm(&ta, &tb, &m, &n, &k, &alpha, b, &lda, a, &ldb, &beta, c, &ldc);
                 },
                 [](int t) { omp_set_num_threads(t); }};
}
#endif

std::vector<Backend> backends() {
  std::vector<Backend> all;
  if (auto b = openblas_backend()) all.push_back(*b);
  if (auto b = blis_backend()) all.push_back(*b);
  if (auto b = onednn_backend()) all.push_back(*b);
#ifdef DPSGD_HAVE_LIBXSMM
  all.push_back(libxsmm_backend());
#else
  std::fprintf(stderr, "skipped: libxsmm (not found at build time)\n");
#endif
  all.push_back(eigen_backend());
  return all;
}

void run_gemm(benchmark::State& state, Backend backend, Shape shape, int threads) {
  const std::size_t a_size = static_cast<std::size_t>(shape.m) * shape.k;
  const std::size_t b_size = static_cast<std::size_t>(shape.k) * shape.n;
  std::vector<float> a(a_size), b(b_size), c(static_cast<std::size_t>(shape.m) * shape.n);
  for (std::size_t i = 0; i < a_size; ++i) a[i] = static_cast<float>((i * 7919u) % 1000u) / 1000.0f - 0.5f;
  for (std::size_t i = 0; i < b_size; ++i) b[i] = static_cast<float>((i * 104729u) % 1000u) / 1000.0f - 0.5f;
  backend.set_threads(threads);
  backend.gemm(shape, a.data(), b.data(), c.data());  // warm-up: JIT, packing buffers, thread pool
  for (auto _ : state) {
    backend.gemm(shape, a.data(), b.data(), c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double gflop = 2e-9 * shape.m * shape.n * shape.k;
  state.counters["GFLOPS"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Shape-major order: the backends of one shape run back to back, so a drift in the machine's speed
  // (other guests on the host) moves their figures together.
  const std::vector<Backend> all = backends();
  for (const Shape& shape : layer_shapes()) {
    for (int threads : {1, 2}) {
      for (const Backend& backend : all) {
        const std::string name = backend.name + "/" + shape.name + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), run_gemm, backend, shape, threads)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime()
            ->MinTime(0.2);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}

// The inner loops of dense clipping, one definition for every x86 CPU: AVX-512, AVX2 or SSE2 picked at load time.
#include "dpsgd/clipping/detail/row_kernels.hpp"

namespace dpsgd::detail {
namespace {

// Each function is compiled three times (target_clones) and the loader picks the widest the CPU
// runs. The loops use 16 interleaved accumulators, so a 512-bit build keeps one register per
// accumulator set, a 128-bit build four, and every lane sees the same additions in the same order:
// with contraction off (this file's build flags) all three clones give the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DPSGD_ROW_KERNEL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DPSGD_ROW_KERNEL_CLONES
#endif

constexpr int kLanes = 16;

template <typename Scalar>
inline Scalar sum_of_squares_impl(const Scalar* values, std::int64_t count) {
  Scalar acc[kLanes] = {};
  std::int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += values[j + k] * values[j + k];
  }
  for (int k = 0; j + k < count; ++k) acc[k] += values[j + k] * values[j + k];
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int k = 0; k < width; ++k) acc[k] += acc[k + width];
  }
  return acc[0];
}

template <typename Scalar>
inline void scaled_add_impl(Scalar* out, const Scalar* values, Scalar factor, std::int64_t count) {
  for (std::int64_t j = 0; j < count; ++j) out[j] += factor * values[j];
}

// The product in double, rounded once to float: for factors below float's smallest normal, whose
// float value would carry a large relative error.
inline void scaled_add_wide_impl(float* out, const float* values, double factor, std::int64_t count) {
  for (std::int64_t j = 0; j < count; ++j) out[j] += static_cast<float>(factor * static_cast<double>(values[j]));
}

}  // namespace

DPSGD_ROW_KERNEL_CLONES double sum_of_squares(const float* values, std::int64_t count) {
  return static_cast<double>(sum_of_squares_impl(values, count));
}
DPSGD_ROW_KERNEL_CLONES double sum_of_squares(const double* values, std::int64_t count) {
  return sum_of_squares_impl(values, count);
}
DPSGD_ROW_KERNEL_CLONES void scaled_add(float* out, const float* values, float factor, std::int64_t count) {
  scaled_add_impl(out, values, factor, count);
}
DPSGD_ROW_KERNEL_CLONES void scaled_add(double* out, const double* values, double factor, std::int64_t count) {
  scaled_add_impl(out, values, factor, count);
}
DPSGD_ROW_KERNEL_CLONES void scaled_add_wide(float* out, const float* values, double factor, std::int64_t count) {
  scaled_add_wide_impl(out, values, factor, count);
}

}  // namespace dpsgd::detail

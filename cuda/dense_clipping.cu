// CUDA kernels for clipping dense per-example gradient rows: row norms, the clipped sum, and the
// fused one-read path; host launchers with the same checks as the CPU functions.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "check.cuh"
#include "dense_kernels.cuh"
#include "device_math.cuh"
#include "dpsgd/clipping/clip_method.hpp"
#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/cuda/dense_clipping.hpp"
#include "dpsgd/cuda/detail/kernel_plan.hpp"

namespace dpsgd::cuda {

using detail::kFusedThreads;
using detail::kRowThreads;

namespace {

// --- the fused kernel: each block keeps one row at a time in registers --------------------------
// Row r: squared norm (block reduction in double; rescaled by the largest magnitude when it
// overflows) turned into the dense clip bound, clip factor (the shared clip_factor), then
// acc += c * row from the same registers (a subnormal factor applied in double).
// Each block writes its partial sum to partials[blockIdx.x]; reduce_partials adds them in order.
template <typename Scalar, int kVec, int kChunks>
__global__ void __launch_bounds__(kFusedThreads)
    fused_clip_kernel(const Scalar* __restrict__ rows, std::int64_t batch, std::int64_t width, std::int64_t stride,
                      const std::uint8_t* __restrict__ mask, double clip_norm, ClipMethod method, double stability,
                      double* __restrict__ squared_norms, Scalar* __restrict__ partials) {
  __shared__ double scratch[32];
  Scalar acc[kChunks][kVec];
#pragma unroll
  for (int k = 0; k < kChunks; ++k)
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[k][e] = Scalar(0);

  for (std::int64_t r = blockIdx.x; r < batch; r += gridDim.x) {
    const Scalar* row = rows + r * stride;
    Scalar v[kChunks][kVec];
    double part = 0.0;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t column = detail::fused_column(k, threadIdx.x, kFusedThreads, kVec);
      if (column < width) {
        detail::load_vector<Scalar, kVec>(row + column, v[k]);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) v[k][e] = Scalar(0);
      }
#pragma unroll
      for (int e = 0; e < kVec; ++e) part += static_cast<double>(v[k][e]) * static_cast<double>(v[k][e]);
    }
    double squared = detail::block_sum(part, scratch);
    if (isinf(squared)) {  // block-uniform: every thread holds the same total
      double max_abs = 0.0;
#pragma unroll
      for (int k = 0; k < kChunks; ++k)
#pragma unroll
        for (int e = 0; e < kVec; ++e) max_abs = detail::nan_sticky_max(max_abs, fabs(static_cast<double>(v[k][e])));
      max_abs = detail::block_max(max_abs, scratch);
      double scaled = 0.0;
      if (max_abs < INFINITY && max_abs > 0.0) {
#pragma unroll
        for (int k = 0; k < kChunks; ++k)
#pragma unroll
          for (int e = 0; e < kVec; ++e) {
            const double t = static_cast<double>(v[k][e]) / max_abs;
            scaled += t * t;
          }
      }
      squared = dpsgd::detail::rescaled_squared_norm_from(max_abs, detail::block_sum(scaled, scratch));
    }
    squared = detail::dense_bound<Scalar>(squared, width);
    const double factor = clip_factor(squared, clip_norm, method, stability, mask[r]);
    if (threadIdx.x == 0) squared_norms[r] = squared;
    if (factor != 0.0) {
      const bool wide = detail::needs_wide_factor<Scalar>(factor);
#pragma unroll
      for (int k = 0; k < kChunks; ++k)
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[k][e] += detail::scaled<Scalar>(factor, wide, v[k][e]);
    }
  }
  Scalar* out = partials + static_cast<std::int64_t>(blockIdx.x) * width;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const std::int64_t column = detail::fused_column(k, threadIdx.x, kFusedThreads, kVec);
    if (column < width) detail::store_vector<Scalar, kVec>(out + column, acc[k]);
  }
}

template <typename Scalar, int kVec>
void launch_fused(int chunks, unsigned blocks, cudaStream_t stream, const Scalar* rows, std::int64_t batch,
                  std::int64_t width, std::int64_t stride, const std::uint8_t* mask, const ClipConfig& config,
                  double* squared_norms, Scalar* partials) {
  const double clip_norm = config.group_clip_norms[0];
#define DPSGD_LAUNCH_FUSED(CHUNKS)                                               \
  fused_clip_kernel<Scalar, kVec, CHUNKS><<<blocks, kFusedThreads, 0, stream>>>( \
      rows, batch, width, stride, mask, clip_norm, config.method, config.automatic_stability, squared_norms, partials)
  switch (chunks) {
    case 1:
      DPSGD_LAUNCH_FUSED(1);
      break;
    case 2:
      DPSGD_LAUNCH_FUSED(2);
      break;
    case 4:
      DPSGD_LAUNCH_FUSED(4);
      break;
    case 8:
      DPSGD_LAUNCH_FUSED(8);
      break;
    default:
      throw InvalidArgument("internal: fused clip kernel has no variant for " + std::to_string(chunks));
  }
#undef DPSGD_LAUNCH_FUSED
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

template <typename Scalar>
void check_squared_norms(const DeviceRows<const Scalar>& rows, const DeviceSquaredNorms& squared_norms, int group) {
  detail::check_rows(rows, "rows");
  DPSGD_CHECK_ARG(rows.rows >= 1, "rows must have at least one row (batch slot), got " << rows.rows);
  DPSGD_CHECK_ARG(squared_norms.batch == rows.rows,
                  "squared_norms must have " << rows.rows << " rows (one per batch slot), got " << squared_norms.batch);
  DPSGD_CHECK_ARG(group >= 0 && group < squared_norms.groups,
                  "group must be in [0, " << squared_norms.groups << "), got " << group);
}

}  // namespace

// --- public API -------------------------------------------------------------------------------

DeviceSquaredNorms::DeviceSquaredNorms(DeviceContext& context, std::int64_t batch_size, int group_count)
    : batch(batch_size), groups(group_count) {
  DPSGD_CHECK_ARG(batch_size >= 1, "batch must be >= 1, got " << batch_size);
  DPSGD_CHECK_ARG(group_count >= 1, "groups must be >= 1, got " << group_count);
  context.activate();
  values = DeviceBuffer<double>(static_cast<std::size_t>(batch_size) * static_cast<std::size_t>(group_count));
  values.set_zero(context.stream());
}

SquaredNorms DeviceSquaredNorms::download(DeviceContext& context) const {
  context.activate();
  SquaredNorms host(batch, groups);
  detail::copy_to_host(host.data(), values.data(), values.size() * sizeof(double), context.stream());
  return host;
}

template <RealScalar Scalar>
void accumulate_squared_norms(DeviceContext& context, DeviceRows<const Scalar> rows, DeviceSquaredNorms& squared_norms,
                              int group) {
  check_squared_norms(rows, squared_norms, group);
  context.activate();
  detail::launch_row_squared_norms(context.stream(), rows, squared_norms.group_column(group),
                                   context.multiprocessor_count(), true);
}

ClipFactors compute_clip_factors(DeviceContext& context, const DeviceSquaredNorms& squared_norms,
                                 std::span<const std::uint8_t> mask, const ClipConfig& config,
                                 DeviceClipFactors& device_factors) {
  config.validate();
  DPSGD_CHECK_ARG(squared_norms.groups == config.num_groups(),
                  "squared_norms has " << squared_norms.groups << " groups but config has " << config.num_groups());
  const SquaredNorms host = squared_norms.download(context);
  ClipFactors result = dpsgd::compute_clip_factors(host, mask, config);
  if (device_factors.values.size() != static_cast<std::size_t>(result.factors.size())) {
    device_factors.values = DeviceBuffer<double>(static_cast<std::size_t>(result.factors.size()));
  }
  device_factors.batch = squared_norms.batch;
  device_factors.groups = squared_norms.groups;
  // Eigen's MatrixXd is column-major, the layout of DeviceClipFactors.
  device_factors.values.upload(std::span<const double>(result.factors.data(), result.factors.size()), context.stream());
  return result;
}

template <RealScalar Scalar>
void accumulate_clipped_sum(DeviceContext& context, DeviceRows<const Scalar> rows, const DeviceClipFactors& factors,
                            int group, Scalar* sum) {
  detail::check_rows(rows, "rows");
  DPSGD_CHECK_ARG(factors.batch == rows.rows,
                  "factors must have " << rows.rows << " rows (one per batch slot), got " << factors.batch);
  DPSGD_CHECK_ARG(group >= 0 && group < factors.groups,
                  "group must be in [0, " << factors.groups << "), got " << group);
  DPSGD_CHECK_ARG(sum != nullptr || rows.cols == 0,
                  "sum must be a device pointer to " << rows.cols << " elements, got nullptr");
  detail::check_device_pointer(sum, "sum");
  context.activate();
  detail::launch_clipped_sum(context, rows, factors.group_column(group), 1, sum);
}

template <RealScalar Scalar>
std::int64_t fused_clip_max_width(bool rows_aligned_16) {
  const int vector = rows_aligned_16 ? 16 / static_cast<int>(sizeof(Scalar)) : 1;
  return static_cast<std::int64_t>(detail::kFusedMaxChunks) * kFusedThreads * vector;
}

template <RealScalar Scalar>
ClipFactors clip_and_accumulate(DeviceContext& context, DeviceRows<const Scalar> rows,
                                std::span<const std::uint8_t> mask, const ClipConfig& config, Scalar* sum,
                                std::span<const std::int64_t> group_offsets, DenseClipPath path) {
  config.validate();
  detail::check_rows(rows, "rows");
  DPSGD_CHECK_ARG(rows.rows >= 1, "rows must have at least one row (batch slot), got " << rows.rows);
  const std::int64_t batch = rows.rows;
  const std::int64_t width = rows.cols;
  const std::int64_t stride = rows.row_stride();
  const std::vector<std::int64_t> offsets = resolve_group_offsets(group_offsets, width, config);
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(mask.size()) == batch,
                  "mask.size() must equal the batch size " << batch << ", got " << mask.size());
  DPSGD_CHECK_ARG(sum != nullptr || width == 0,
                  "sum must be a device pointer to " << width << " elements, got nullptr");
  detail::check_device_pointer(sum, "sum");
  DPSGD_CHECK_ARG(path == DenseClipPath::kAuto || path == DenseClipPath::kFused || path == DenseClipPath::kTwoPass,
                  "path must be a DenseClipPath, got " << static_cast<int>(path));
  context.activate();

  const int vector = detail::vector_width(reinterpret_cast<std::uint64_t>(rows.data), stride, width, sizeof(Scalar));
  const int chunks = detail::fused_chunks(width, vector, kFusedThreads);
  const bool fused_applies = config.num_groups() == 1 && chunks > 0 && width > 0;
  DPSGD_CHECK_ARG(path != DenseClipPath::kFused || fused_applies,
                  "path kFused needs one clip group and a row width of at most "
                      << fused_clip_max_width<Scalar>(vector > 1) << " for this alignment; got " << config.num_groups()
                      << " groups and width " << width);

  if (path == DenseClipPath::kTwoPass || !fused_applies) {
    DeviceSquaredNorms squared_norms(context, batch, config.num_groups());
    for (int k = 0; k < config.num_groups(); ++k) {
      const DeviceRows<const Scalar> block{rows.data + offsets[k], batch, offsets[k + 1] - offsets[k], stride};
      detail::launch_row_squared_norms(context.stream(), block, squared_norms.group_column(k),
                                       context.multiprocessor_count(), true);
    }
    DeviceClipFactors factors;
    ClipFactors result = compute_clip_factors(context, squared_norms, mask, config, factors);
    for (int k = 0; k < config.num_groups(); ++k) {
      const DeviceRows<const Scalar> block{rows.data + offsets[k], batch, offsets[k + 1] - offsets[k], stride};
      detail::launch_clipped_sum(context, block, factors.group_column(k), 1, sum + offsets[k]);
    }
    context.synchronize();
    return result;
  }

  // Fused: one scratch allocation holds the block partial sums, the squared norms and the mask.
  const std::int64_t blocks = detail::fused_blocks(batch, context.multiprocessor_count());
  const std::size_t partial_bytes = detail::align_up(static_cast<std::size_t>(blocks * width) * sizeof(Scalar));
  const std::size_t norm_bytes = detail::align_up(static_cast<std::size_t>(batch) * sizeof(double));
  auto* base = static_cast<unsigned char*>(context.scratch(partial_bytes + norm_bytes + mask.size()));
  auto* partials = reinterpret_cast<Scalar*>(base);
  auto* squared = reinterpret_cast<double*>(base + partial_bytes);
  auto* device_mask = base + partial_bytes + norm_bytes;
  detail::copy_to_device(device_mask, mask.data(), mask.size(), context.stream());
  if (vector == 1) {
    launch_fused<Scalar, 1>(chunks, static_cast<unsigned>(blocks), context.stream(), rows.data, batch, width, stride,
                            device_mask, config, squared, partials);
  } else {
    launch_fused<Scalar, 16 / sizeof(Scalar)>(chunks, static_cast<unsigned>(blocks), context.stream(), rows.data, batch,
                                              width, stride, device_mask, config, squared, partials);
  }
  detail::launch_reduce_partials(context.stream(), partials, blocks, width, sum);
  SquaredNorms host(batch, 1);
  detail::copy_to_host(host.data(), squared, static_cast<std::size_t>(batch) * sizeof(double), context.stream());
  // The host recomputes the factors from the same norms with the same clip_factor: identical values,
  // and the statistics (clipped, dropped) come with them.
  return dpsgd::compute_clip_factors(host, mask, config);
}

#define DPSGD_INSTANTIATE(Scalar)                                                                                     \
  template void accumulate_squared_norms<Scalar>(DeviceContext&, DeviceRows<const Scalar>, DeviceSquaredNorms&, int); \
  template void accumulate_clipped_sum<Scalar>(DeviceContext&, DeviceRows<const Scalar>, const DeviceClipFactors&,    \
                                               int, Scalar*);                                                         \
  template std::int64_t fused_clip_max_width<Scalar>(bool);                                                           \
  template ClipFactors clip_and_accumulate<Scalar>(DeviceContext&, DeviceRows<const Scalar>,                          \
                                                   std::span<const std::uint8_t>, const ClipConfig&, Scalar*,         \
                                                   std::span<const std::int64_t>, DenseClipPath);
DPSGD_INSTANTIATE(float)
DPSGD_INSTANTIATE(double)
#undef DPSGD_INSTANTIATE

}  // namespace dpsgd::cuda

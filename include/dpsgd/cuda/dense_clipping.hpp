// The GPU twins of dpsgd's dense clipping (norms, factors, clipped sum, and the fused call) over
// device memory. Plain C++: includes no CUDA header.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/real_scalar.hpp"
#include "dpsgd/cuda/device_context.hpp"

namespace dpsgd::cuda {

// Per-example, per-group squared norms on the device: batch x groups doubles, column-major (the
// norms of one group are contiguous), the device twin of dpsgd::SquaredNorms. Dense blocks and
// ghost layers add into the same matrix.
struct DeviceSquaredNorms {
  DeviceSquaredNorms(DeviceContext& context, std::int64_t batch, int groups);  // zero-filled
  std::int64_t batch = 0;
  int groups = 0;
  DeviceBuffer<double> values;

  double* group_column(int group) { return values.data() + static_cast<std::int64_t>(group) * batch; }
  const double* group_column(int group) const { return values.data() + static_cast<std::int64_t>(group) * batch; }
  SquaredNorms download(DeviceContext& context) const;  // synchronises
};

// Clip factors on the device, batch x groups, column-major; 0 for padding and dropped examples.
struct DeviceClipFactors {
  std::int64_t batch = 0;
  int groups = 0;
  DeviceBuffer<double> values;

  const double* group_column(int group) const { return values.data() + static_cast<std::int64_t>(group) * batch; }
};

// squared_norms(i, group) += ||rows.row(i)||^2 in double, overflow-safe as on the CPU (a row whose
// sum of squares overflows is rescaled by its largest magnitude). One thread block per row.
// Asynchronous. Throws InvalidArgument on null data, mismatched rows, or a bad group.
template <RealScalar Scalar>
void accumulate_squared_norms(DeviceContext& context, DeviceRows<const Scalar> rows, DeviceSquaredNorms& squared_norms,
                              int group = 0);

// The clip decision of dpsgd::compute_clip_factors (the very same host function runs on the
// downloaded norms, so factors and statistics are identical to the CPU path's for equal norms),
// with the factors uploaded to `device_factors` for the clipped-sum kernels. Synchronises: call it
// once per step, after every block and layer has added its norms. `mask` is on the host.
ClipFactors compute_clip_factors(DeviceContext& context, const DeviceSquaredNorms& squared_norms,
                                 std::span<const std::uint8_t> mask, const ClipConfig& config,
                                 DeviceClipFactors& device_factors);

// sum += sum_i factors(i, group) * rows.row(i) over device memory. Rows whose factor is 0 are never
// read, so NaN in padding or dropped rows cannot reach the sum. Deterministic: rows are summed in a
// fixed order that depends only on the shape and the device's multiprocessor count. Asynchronous.
template <RealScalar Scalar>
void accumulate_clipped_sum(DeviceContext& context, DeviceRows<const Scalar> rows, const DeviceClipFactors& factors,
                            int group, Scalar* sum);

enum class DenseClipPath : int {
  kAuto = 0,     // kFused when it applies, else kTwoPass
  kFused = 1,    // one read of the rows: flat clipping with rows of at most fused_clip_max_width() elements
  kTwoPass = 2,  // norms, then factors, then a second read for the clipped sum
};

// Widest row the fused path keeps on chip (in registers) for this element type and row alignment:
// 16384 floats or 8192 doubles with 16-byte aligned rows, a quarter of that otherwise.
template <RealScalar Scalar>
std::int64_t fused_clip_max_width(bool rows_aligned_16);

// The device twin of dpsgd::clip_and_accumulate: norms, factors and sum += sum_i c_i g_i for a
// B x P matrix of per-example gradients in device memory. `mask` and `group_offsets` are on the
// host, as on the CPU. With flat clipping and rows that fit on chip, one fused kernel reads each
// row once (norm, factor and scaled accumulation from registers) and a small second kernel adds the
// per-block partial sums in a fixed order. Synchronises (the statistics come back to the host).
// Throws InvalidArgument as the CPU version does, and for kFused where it does not apply.
template <RealScalar Scalar>
ClipFactors clip_and_accumulate(DeviceContext& context, DeviceRows<const Scalar> rows,
                                std::span<const std::uint8_t> mask, const ClipConfig& config, Scalar* sum,
                                std::span<const std::int64_t> group_offsets = {},
                                DenseClipPath path = DenseClipPath::kAuto);

// The calls above also take mutable views (DeviceRows<float>), which the template arguments alone
// would not convert.
template <RealScalar Scalar>
void accumulate_squared_norms(DeviceContext& context, DeviceRows<Scalar> rows, DeviceSquaredNorms& squared_norms,
                              int group = 0) {
  accumulate_squared_norms<Scalar>(context, DeviceRows<const Scalar>(rows), squared_norms, group);
}
template <RealScalar Scalar>
void accumulate_clipped_sum(DeviceContext& context, DeviceRows<Scalar> rows, const DeviceClipFactors& factors,
                            int group, Scalar* sum) {
  accumulate_clipped_sum<Scalar>(context, DeviceRows<const Scalar>(rows), factors, group, sum);
}
template <RealScalar Scalar>
ClipFactors clip_and_accumulate(DeviceContext& context, DeviceRows<Scalar> rows, std::span<const std::uint8_t> mask,
                                const ClipConfig& config, Scalar* sum, std::span<const std::int64_t> group_offsets = {},
                                DenseClipPath path = DenseClipPath::kAuto) {
  return clip_and_accumulate<Scalar>(context, DeviceRows<const Scalar>(rows), mask, config, sum, group_offsets, path);
}

}  // namespace dpsgd::cuda

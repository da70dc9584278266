// Test support for the GPU tests: the skip macro and host <-> device helpers over DeviceBuffer.
#pragma once

#include <gtest/gtest.h>

#include <span>
#include <vector>

#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/cuda/device_context.hpp"

namespace dpsgd::test {

#define DPSGD_SKIP_WITHOUT_GPU() \
  if (!::dpsgd::cuda::device_available()) GTEST_SKIP() << "no CUDA device present: GPU test skipped"

template <typename Scalar>
cuda::DeviceBuffer<Scalar> to_device(const RowMajorMatrix<Scalar>& m) {
  return cuda::DeviceBuffer<Scalar>(std::span<const Scalar>(m.data(), static_cast<std::size_t>(m.size())));
}

template <typename Scalar>
cuda::DeviceBuffer<Scalar> to_device(const std::vector<Scalar>& v) {
  return cuda::DeviceBuffer<Scalar>(std::span<const Scalar>(v));
}

template <typename Scalar>
RowMajorMatrix<Scalar> to_host(const cuda::DeviceBuffer<Scalar>& buffer, Eigen::Index rows, Eigen::Index cols) {
  const std::vector<Scalar> host = buffer.download();
  return Eigen::Map<const RowMajorMatrix<Scalar>>(host.data(), rows, cols);
}

}  // namespace dpsgd::test

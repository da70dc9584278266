// Eigen types for per-example data: row-major so that one example's values are contiguous.
#pragma once

#include <Eigen/Core>

namespace dpsgd {

template <typename Scalar>
using RowMajorMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A read-only view of user memory laid out row-major (rows may be strided, e.g. a column block
// of a wider matrix). Pass an Eigen::Map over your buffer to avoid any copy.
template <typename Scalar>
using ConstRowsRef = Eigen::Ref<const RowMajorMatrix<Scalar>, 0, Eigen::OuterStride<>>;

template <typename Scalar>
using RowsRef = Eigen::Ref<RowMajorMatrix<Scalar>, 0, Eigen::OuterStride<>>;

}  // namespace dpsgd

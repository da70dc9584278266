// Channel whitening from released channel moments: the per-example row, the matrix, its application.
#include "dpsgd/features/channel_whitening.hpp"

#include <Eigen/Eigenvalues>

#include <cmath>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {

std::int64_t channel_moment_dimension(std::int64_t channels) {
  DPSGD_CHECK_ARG(channels >= 1 && channels <= 4096, "channels must be in [1, 4096], got " << channels);
  return channels * (channels + 1) / 2;
}

void channel_moment_row(std::span<const float> features, std::int64_t channels, std::span<double> row) {
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(row.size()) == channel_moment_dimension(channels),
                  "row must hold " << channel_moment_dimension(channels) << " values for " << channels
                                   << " channels, got " << row.size());
  const auto size = static_cast<std::int64_t>(features.size());
  DPSGD_CHECK_ARG(size % channels == 0,
                  "features must hold whole pixels of " << channels << " channels, got " << size << " values");
  const Eigen::Map<const RowMajorMatrix<float>> pixels(features.data(), size / channels, channels);
  const Eigen::MatrixXd moment = pixels.cast<double>().transpose() * pixels.cast<double>();
  std::size_t k = 0;
  for (std::int64_t i = 0; i < channels; ++i)
    for (std::int64_t j = i; j < channels; ++j) row[k++] = moment(i, j);
}

RowMajorMatrix<float> channel_whitening(std::span<const double> released, std::int64_t channels, double count,
                                        double floor) {
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(released.size()) == channel_moment_dimension(channels),
                  "released must hold " << channel_moment_dimension(channels) << " values for " << channels
                                        << " channels, got " << released.size());
  validate_positive("count", count);
  validate_positive("floor", floor);
  Eigen::MatrixXd moment(channels, channels);
  std::size_t k = 0;
  for (std::int64_t i = 0; i < channels; ++i)
    for (std::int64_t j = i; j < channels; ++j, ++k) {
      if (!std::isfinite(released[k]))
        throw_invalid_value("released[" + std::to_string(k) + "]", "finite", released[k]);
      moment(i, j) = moment(j, i) = released[k] / count;
    }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(moment);
  if (eigen.info() != Eigen::Success) throw Error("channel_whitening: the eigen-decomposition did not converge");
  const Eigen::VectorXd gain = (eigen.eigenvalues().array().max(0.0) + floor).rsqrt();
  return (eigen.eigenvectors() * gain.asDiagonal() * eigen.eigenvectors().transpose()).cast<float>();
}

void whiten_channels(RowsRef<float> rows, const RowMajorMatrix<float>& whitening) {
  const Eigen::Index channels = whitening.rows();
  DPSGD_CHECK_ARG(channels >= 1 && whitening.cols() == channels,
                  "whitening must be square, got " << whitening.rows() << " x " << whitening.cols());
  DPSGD_CHECK_ARG(rows.cols() % channels == 0,
                  "rows must hold whole pixels of " << channels << " channels, got " << rows.cols() << " columns");
  const Eigen::Index pixels = rows.cols() / channels;
#pragma omp parallel for schedule(static)
  for (Eigen::Index r = 0; r < rows.rows(); ++r) {
    Eigen::Map<RowMajorMatrix<float>> row(rows.row(r).data(), pixels, channels);
    row = (row * whitening).eval();  // W is symmetric: each pixel's c^T W = (W c)^T
  }
}

}  // namespace dpsgd

// Channel whitening: one C x C matrix, shared by every pixel, that decorrelates the channels of NHWC
// features, estimated from a DP release of their second moments (Analyze Gauss), so it costs only
// the release's charge in the run's ledger.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd {

// The values in one example's release row: the upper triangle, diagonal included, of a C x C matrix.
std::int64_t channel_moment_dimension(std::int64_t channels);

// One example's row for the release: the upper triangle, row by row, of S = sum over the pixels p of
// c_p c_p^T, c_p the pixel's `channels` values (accumulated in double). ||row|| <= ||S||_F <= trace(S)
// = ||features||^2 (S is a sum of positive semi-definite rank-one terms), so a clip norm of the
// features' squared norm clips nothing: under group normalisation (group_normalise_rows) that is the
// feature count, a public constant. Throws InvalidArgument on sizes that do not fit.
void channel_moment_row(std::span<const float> features, std::int64_t channels, std::span<double> row);

// From the released sum of such rows: M = (the upper triangle, mirrored) / count, decomposed as
// V diag(lambda) V^T, gives W = V diag((max(lambda, 0) + floor)^(-1/2)) V^T, symmetric. The floor
// bounds W's gain by floor^(-1/2): the release's noise moves every eigenvalue by up to its spectral
// norm and can make small ones negative, and the floor keeps those directions from being blown up.
// `count` is the number of pixels summed over (N times the pixels per example: public). Throws
// InvalidArgument on a size that does not fit, a non-finite value, count <= 0 or floor <= 0.
RowMajorMatrix<float> channel_whitening(std::span<const double> released, std::int64_t channels, double count,
                                        double floor);

// Multiplies every pixel's channel vector of every row (NHWC, rows.cols() a multiple of W's size) by
// W, in place. Each row's result depends on that row and W only.
void whiten_channels(RowsRef<float> rows, const RowMajorMatrix<float>& whitening);

}  // namespace dpsgd

// Test support: what one example adds to the clipped sum on each clipping route, measured in long
// double, and the pre-fix ("naive") formulas the negative controls show to be unsound.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"

namespace dpsgd::test {

template <typename Container>
long double squared_norm_ld(const Container& values) {
  long double total = 0.0L;
  for (const auto v : values) total += static_cast<long double>(v) * static_cast<long double>(v);
  return total;
}

// A linear layer's saved tensors for a batch (example i owns rows [i T, (i + 1) T)).
template <typename Scalar>
struct LinearBatch {
  RowMajorMatrix<Scalar> a, dy;
  std::int64_t batch = 1;
};

// The clipped gradient (weight and bias, flattened) the library produces for a batch, with factors
// from its own norms; `factors` receives them.
template <typename Scalar>
std::vector<long double> clipped_linear_gradient(const LinearBatch<Scalar>& l, std::span<const std::uint8_t> mask,
                                                 bool bias, const ClipConfig& config, GhostNormMethod method,
                                                 ClipFactors* factors = nullptr) {
  SquaredNorms norms = SquaredNorms::Zero(l.batch, 1);
  accumulate_linear_squared_norms<Scalar>(l.a, l.dy, l.batch, bias, norms, 0, method);
  const ClipFactors f = compute_clip_factors(norms, mask, config);
  RowMajorMatrix<Scalar> w = RowMajorMatrix<Scalar>::Zero(l.dy.cols(), l.a.cols());
  std::vector<Scalar> b(bias ? static_cast<std::size_t>(l.dy.cols()) : 0, Scalar{0});
  accumulate_linear_clipped_gradient<Scalar>(l.a, l.dy, l.batch, f.factors, 0, w, b);
  if (factors != nullptr) *factors = f;
  std::vector<long double> out(w.data(), w.data() + w.size());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// ||what one example (the whole batch of one) adds|| / C on the ghost route.
template <typename Scalar>
double released_linear_ratio(const LinearBatch<Scalar>& one, bool bias, const ClipConfig& config,
                             GhostNormMethod method) {
  const std::vector<std::uint8_t> mask{1};
  return static_cast<double>(std::sqrt(squared_norm_ld(clipped_linear_gradient(one, mask, bias, config, method))) /
                             static_cast<long double>(config.sensitivity()));
}

// ||what one dense row adds|| / sensitivity, and per group ||part k|| / C_k (the worst).
template <typename Scalar>
double released_dense_ratio(const RowMajorMatrix<Scalar>& row, const ClipConfig& config,
                            std::span<const std::int64_t> offsets = {}) {
  std::vector<Scalar> sum(static_cast<std::size_t>(row.cols()), Scalar{0});
  const std::vector<std::uint8_t> mask{1};
  clip_and_accumulate<Scalar>(row, mask, config, sum, offsets);
  const std::vector<std::int64_t> bounds =
      resolve_group_offsets(offsets, static_cast<std::int64_t>(row.cols()), config);
  double worst = 0.0;
  for (int k = 0; k < config.num_groups(); ++k) {
    long double part = 0.0L;
    for (std::int64_t j = bounds[k]; j < bounds[k + 1]; ++j)
      part += static_cast<long double>(sum[j]) * static_cast<long double>(sum[j]);
    worst = std::max(worst, static_cast<double>(std::sqrt(part) / config.group_clip_norms[k]));
  }
  return worst;
}

// The ghost norm before the fix: Gram products in the input precision, their inner product in
// double, no account of rounding. Cancellation between an example's positions makes it far too small.
template <typename Scalar>
double naive_gram_squared_norm(const RowMajorMatrix<Scalar>& a, const RowMajorMatrix<Scalar>& dy) {
  using M = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  const M gram_a = M(a) * M(a).transpose();
  const M gram_g = M(dy) * M(dy).transpose();
  const double s = gram_a.template cast<double>().cwiseProduct(gram_g.template cast<double>()).sum();
  return s < 0.0 ? 0.0 : s;
}

// What the layer adds for one example when the factor comes from `squared_norm` (any formula).
template <typename Scalar>
double released_with_norm(const LinearBatch<Scalar>& one, double squared_norm, const ClipConfig& config) {
  const ClipFactors f =
      compute_clip_factors(SquaredNorms::Constant(1, 1, squared_norm), std::vector<std::uint8_t>{1}, config);
  RowMajorMatrix<Scalar> w = RowMajorMatrix<Scalar>::Zero(one.dy.cols(), one.a.cols());
  accumulate_linear_clipped_gradient<Scalar>(one.a, one.dy, 1, f.factors, 0, w, {});
  return static_cast<double>(std::sqrt(squared_norm_ld(std::span<const Scalar>(w.data(), w.size()))) /
                             static_cast<long double>(config.sensitivity()));
}

// One example of a sequence layer whose per-position gradients cancel: a_t = offset + spread * noise,
// dy_t = s_t g + residual * noise with signs s_t = +1, -1, +1, ... summing to 0 (the last is 0 for odd T). The Gram
// matrices are huge (offset^2 d_in), the gradient small: float Gram products lose it to rounding entirely. dy is then
// scaled so that the exact gradient (of the values as stored) has norm `times` C.
template <typename Scalar>
LinearBatch<Scalar> cancelling_example(std::mt19937_64& rng, std::int64_t t, std::int64_t d_in, std::int64_t d_out,
                                       double offset, double spread, double residual, double times, double clip) {
  std::normal_distribution<double> normal;
  LinearBatch<Scalar> l{RowMajorMatrix<Scalar>(t, d_in), RowMajorMatrix<Scalar>(t, d_out), 1};
  std::vector<double> g(static_cast<std::size_t>(d_out));
  for (double& v : g) v = normal(rng);
  for (std::int64_t p = 0; p < t; ++p) {
    for (std::int64_t k = 0; k < d_in; ++k) l.a(p, k) = static_cast<Scalar>(offset + spread * normal(rng));
    const double sign = (t % 2 == 1 && p == t - 1) ? 0.0 : (p % 2 == 0 ? 1.0 : -1.0);
    for (std::int64_t k = 0; k < d_out; ++k)
      l.dy(p, k) = static_cast<Scalar>(sign * g[static_cast<std::size_t>(k)] + residual * normal(rng));
  }
  const auto exact_norm = [&] {
    using Ld = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;
    const Ld product = l.dy.template cast<long double>().transpose() * l.a.template cast<long double>();
    return std::sqrt(static_cast<double>(product.squaredNorm()));
  };
  const double norm = exact_norm();
  if (norm > 0.0) l.dy *= static_cast<Scalar>(times * clip / norm);
  return l;
}

}  // namespace dpsgd::test

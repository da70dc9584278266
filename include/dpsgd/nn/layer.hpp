// nn::Layer: the interface of the reference layers, one row per example (or per example position).
#pragma once

#include <cstdint>
#include <span>

#include <Eigen/Core>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::nn {

// A layer maps a batch of rows forward and per-example output gradients backward. Layers with
// parameters point into the model's flat parameter buffer (bind) and contribute ghost norms and
// clipped gradients for their slice; parameter-free layers leave those as no-ops.
template <typename Scalar>
class Layer {
 public:
  virtual ~Layer() = default;
  virtual RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) = 0;
  // Returns dL/d input from dL/d output, both per example (not averaged over the batch).
  virtual RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) = 0;
  virtual std::int64_t num_parameters() const { return 0; }
  virtual void bind(Scalar* /*parameters*/) {}
  virtual void initialize(std::uint64_t /*seed*/, std::uint32_t /*layer_index*/) {}
  virtual void accumulate_squared_norms(std::int64_t /*batch*/, SquaredNorms& /*norms*/, int /*group*/) const {}
  virtual void accumulate_clipped_gradient(std::int64_t /*batch*/, const Eigen::MatrixXd& /*factors*/, int /*group*/,
                                           std::span<Scalar> /*grad_slice*/) const {}
};

}  // namespace dpsgd::nn

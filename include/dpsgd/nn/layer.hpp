// nn::ParameterBlock and nn::Layer: the interfaces of the reference layers (parameters, ghost factors,
// and the row-wise forward and backward passes).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::nn {

// A run of a block's parameters, [offset, offset + size) within the block's slice of the model buffer.
struct ParameterRange {
  std::int64_t offset = 0;
  std::int64_t size = 0;
};

// Something with parameters in the model's flat buffer (bind) that contributes ghost norms and
// clipped gradients for its slice. Parameter-free blocks leave those as no-ops. Frozen parameters
// (fine-tuning) are left out of trainable_ranges(): they get neither a gradient nor noise.
template <typename Scalar>
class ParameterBlock {
 public:
  virtual ~ParameterBlock() = default;
  virtual std::int64_t num_parameters() const { return 0; }
  virtual void bind(Scalar* /*parameters*/) {}
  virtual void initialize(std::uint64_t /*seed*/, std::uint32_t /*layer_index*/) {}
  // Layers with their own initial values inside the block (a composite counts its parts), so that
  // every one of them is initialised from a different index.
  virtual std::uint32_t num_leaves() const { return 1; }
  // The trainable parts of the block's slice: all of it unless the block was told otherwise.
  virtual std::vector<ParameterRange> trainable_ranges() const {
    if (num_parameters() == 0) return {};
    return {ParameterRange{0, num_parameters()}};
  }
  // squared_norms(i, group) += (bound on) ||example i's gradient of the trainable parameters||^2.
  virtual void accumulate_squared_norms(std::int64_t /*batch*/, SquaredNorms& /*norms*/, int /*group*/) const {}
  // grad_slice (the block's whole slice) += sum_i c_i grad_i over the trainable parameters.
  virtual void accumulate_clipped_gradient(std::int64_t /*batch*/, const Eigen::MatrixXd& /*factors*/, int /*group*/,
                                           std::span<Scalar> /*grad_slice*/) const {}
};

// A layer maps a batch of rows forward and per-example output gradients backward.
template <typename Scalar>
class Layer : public ParameterBlock<Scalar> {
 public:
  virtual RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) = 0;
  // Returns dL/d input from dL/d output, both per example (not averaged over the batch).
  virtual RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) = 0;
  // backward() where nothing needs dL/d input (the model's first layer): keeps what the gradient
  // functions need and may skip the input gradient, which for a first linear layer is a quarter of
  // a step's arithmetic. Layers without that shortcut run backward() and drop its result.
  virtual void backward_parameters_only(const ConstRowsRef<Scalar>& output_grad) { backward(output_grad); }
};

}  // namespace dpsgd::nn

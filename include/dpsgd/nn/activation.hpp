// nn::Activation: elementwise ReLU or tanh with the backward pass through it.
#pragma once

#include <cmath>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

enum class ActivationKind : int { kRelu = 0, kTanh = 1 };

// Parameter-free, so it adds nothing to the per-example gradient: ghost clipping passes through it.
template <typename Scalar>
class Activation : public Layer<Scalar> {
 public:
  explicit Activation(ActivationKind kind) : kind_(kind) {
    DPSGD_CHECK_ARG(kind == ActivationKind::kRelu || kind == ActivationKind::kTanh,
                    "kind must be ActivationKind::kRelu or kTanh, got " << static_cast<int>(kind));
  }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    output_ = kind_ == ActivationKind::kRelu ? RowMajorMatrix<Scalar>(input.cwiseMax(Scalar{0}))
                                             : RowMajorMatrix<Scalar>(input.array().tanh().matrix());
    return output_;
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) override {
    DPSGD_CHECK_ARG(output_grad.rows() == output_.rows() && output_grad.cols() == output_.cols(),
                    "output_grad must be " << output_.rows() << " x " << output_.cols() << ", got "
                                           << output_grad.rows() << " x " << output_grad.cols());
    if (kind_ == ActivationKind::kRelu) {
      return (output_.array() > Scalar{0}).select(output_grad, Scalar{0});
    }
    return (output_grad.array() * (Scalar{1} - output_.array().square())).matrix();
  }

 private:
  ActivationKind kind_;
  RowMajorMatrix<Scalar> output_;
};

}  // namespace dpsgd::nn

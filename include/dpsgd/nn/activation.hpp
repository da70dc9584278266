// nn::Activation: elementwise ReLU, tanh or GELU with the backward pass through it.
#pragma once

#include <cmath>

#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

// kGelu is the tanh approximation of GELU (Hendrycks & Gimpel 2016) that GPT-2 uses:
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
enum class ActivationKind : int { kRelu = 0, kTanh = 1, kGelu = 2 };

// Parameter-free, so it adds nothing to the per-example gradient: ghost clipping passes through it.
template <typename Scalar>
class Activation : public Layer<Scalar> {
 public:
  explicit Activation(ActivationKind kind) : kind_(kind) {
    DPSGD_CHECK_ARG(kind == ActivationKind::kRelu || kind == ActivationKind::kTanh || kind == ActivationKind::kGelu,
                    "kind must be ActivationKind::kRelu, kTanh or kGelu, got " << static_cast<int>(kind));
  }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    if (kind_ == ActivationKind::kGelu) return gelu_forward(input);
    output_ = kind_ == ActivationKind::kRelu ? RowMajorMatrix<Scalar>(input.cwiseMax(Scalar{0}))
                                             : RowMajorMatrix<Scalar>(input.array().tanh().matrix());
    return output_;
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) override {
    DPSGD_CHECK_ARG(output_grad.rows() == output_.rows() && output_grad.cols() == output_.cols(),
                    "output_grad must be " << output_.rows() << " x " << output_.cols() << ", got "
                                           << output_grad.rows() << " x " << output_grad.cols());
    if (kind_ == ActivationKind::kGelu) return gelu_backward(output_grad);
    RowMajorMatrix<Scalar> input_grad(output_.rows(), output_.cols());
    const Eigen::Index width = output_.cols();
    const bool relu = kind_ == ActivationKind::kRelu;
    // Plain row loops: Eigen's select() over a strided view compiled to a branch per element and
    // took 8% of an MLP step; this one vectorises to compare-and-blend.
    const auto rows = [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        const Scalar* out = output_.data() + i * width;
        const Scalar* grad = output_grad.data() + i * output_grad.outerStride();
        Scalar* result = input_grad.data() + i * width;
        if (relu) {
          for (Eigen::Index j = 0; j < width; ++j) {
            const Scalar g = grad[j];  // loaded unconditionally, so the select needs no branch
            result[j] = out[j] > Scalar{0} ? g : Scalar{0};
          }
        } else {
          for (Eigen::Index j = 0; j < width; ++j) result[j] = grad[j] * (Scalar{1} - out[j] * out[j]);
        }
      }
    };
    if (detail::worth_parallel(static_cast<long long>(output_.size())) && output_.rows() > 1) {
#pragma omp parallel for schedule(static)
      for (Eigen::Index i = 0; i < output_.rows(); ++i) rows(i, i + 1);
    } else {
      rows(0, output_.rows());
    }
    return input_grad;
  }

 private:
  static constexpr Scalar kGeluScale = Scalar(0.7978845608028654);  // sqrt(2 / pi)
  static constexpr Scalar kGeluCubic = Scalar(0.044715);

  // GELU's derivative needs its input, not its output: the input is kept instead.
  RowMajorMatrix<Scalar> gelu_forward(const ConstRowsRef<Scalar>& input) {
    output_ = input;
    const auto x = input.array();
    return (Scalar(0.5) * x * (Scalar(1) + (kGeluScale * (x + kGeluCubic * x.cube())).tanh())).matrix();
  }

  RowMajorMatrix<Scalar> gelu_backward(const ConstRowsRef<Scalar>& output_grad) const {
    DPSGD_CHECK_ARG(output_grad.rows() == output_.rows() && output_grad.cols() == output_.cols(),
                    "output_grad must be " << output_.rows() << " x " << output_.cols() << ", got "
                                           << output_grad.rows() << " x " << output_grad.cols());
    const auto x = output_.array();
    const Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> t =
        (kGeluScale * (x + kGeluCubic * x.cube())).tanh();
    const auto derivative = Scalar(0.5) * (Scalar(1) + t) + Scalar(0.5) * x * (Scalar(1) - t.square()) * kGeluScale *
                                                                (Scalar(1) + Scalar(3) * kGeluCubic * x.square());
    return (output_grad.array() * derivative).matrix();
  }

  ActivationKind kind_;
  RowMajorMatrix<Scalar> output_;  // the output (ReLU, tanh) or the input (GELU)
};

}  // namespace dpsgd::nn

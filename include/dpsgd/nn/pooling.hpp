// nn::MaxPool2d and nn::AvgPool2d over NHWC rows: parameter-free, so ghost clipping passes through.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

enum class PoolKind : int { kMax = 0, kAverage = 1 };

// Square windows, no padding. Max pooling sends each output gradient to the window's first maximum.
template <typename Scalar>
class Pool2d final : public Layer<Scalar> {
 public:
  Pool2d(ImageShape input, std::int64_t kernel, std::int64_t stride, PoolKind kind)
      : in_(input), kernel_(kernel), stride_(stride), kind_(kind) {
    DPSGD_CHECK_ARG(
        input.height >= 1 && input.width >= 1 && input.channels >= 1,
        "input shape must be positive, got " << input.height << " x " << input.width << " x " << input.channels);
    DPSGD_CHECK_ARG(kernel >= 1 && kernel <= input.height && kernel <= input.width,
                    "kernel must be in [1, min(height, width)], got " << kernel);
    DPSGD_CHECK_ARG(stride >= 1, "stride must be >= 1, got " << stride);
    DPSGD_CHECK_ARG(kind == PoolKind::kMax || kind == PoolKind::kAverage,
                    "kind must be PoolKind::kMax or kAverage, got " << static_cast<int>(kind));
  }

  ImageShape output_shape() const {
    return {(in_.height - kernel_) / stride_ + 1, (in_.width - kernel_) / stride_ + 1, in_.channels};
  }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    DPSGD_CHECK_ARG(input.cols() == in_.size(),
                    "input must have " << in_.size() << " columns (H*W*C), got " << input.cols());
    const ImageShape out = output_shape();
    batch_ = input.rows();
    RowMajorMatrix<Scalar> output(batch_, out.size());
    argmax_.assign(static_cast<std::size_t>(batch_ * out.size()), 0);
    const Scalar inv_area = Scalar{1} / static_cast<Scalar>(kernel_ * kernel_);
#pragma omp parallel for schedule(static) if (batch_ * out.size() > 32768)
    for (std::int64_t b = 0; b < batch_; ++b) {
      for (std::int64_t oh = 0; oh < out.height; ++oh) {
        for (std::int64_t ow = 0; ow < out.width; ++ow) {
          for (std::int64_t c = 0; c < in_.channels; ++c) {
            Scalar best = -std::numeric_limits<Scalar>::infinity(), sum = 0;
            std::int64_t best_index = 0;
            for (std::int64_t kh = 0; kh < kernel_; ++kh) {
              for (std::int64_t kw = 0; kw < kernel_; ++kw) {
                const std::int64_t index = ((oh * stride_ + kh) * in_.width + (ow * stride_ + kw)) * in_.channels + c;
                const Scalar v = input(b, index);
                sum += v;
                if (v > best) {
                  best = v;
                  best_index = index;
                }
              }
            }
            const std::int64_t o = (oh * out.width + ow) * in_.channels + c;
            output(b, o) = kind_ == PoolKind::kMax ? best : sum * inv_area;
            argmax_[static_cast<std::size_t>(b * out.size() + o)] = best_index;
          }
        }
      }
    }
    return output;
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) override {
    const ImageShape out = output_shape();
    DPSGD_CHECK_ARG(output_grad.rows() == batch_ && output_grad.cols() == out.size(),
                    "output_grad must be " << batch_ << " x " << out.size() << ", got " << output_grad.rows() << " x "
                                           << output_grad.cols());
    RowMajorMatrix<Scalar> input_grad = RowMajorMatrix<Scalar>::Zero(batch_, in_.size());
    const Scalar inv_area = Scalar{1} / static_cast<Scalar>(kernel_ * kernel_);
#pragma omp parallel for schedule(static) if (batch_ * out.size() > 32768)
    for (std::int64_t b = 0; b < batch_; ++b) {
      for (std::int64_t oh = 0; oh < out.height; ++oh) {
        for (std::int64_t ow = 0; ow < out.width; ++ow) {
          for (std::int64_t c = 0; c < in_.channels; ++c) {
            const std::int64_t o = (oh * out.width + ow) * in_.channels + c;
            if (kind_ == PoolKind::kMax) {
              input_grad(b, argmax_[static_cast<std::size_t>(b * out.size() + o)]) += output_grad(b, o);
              continue;
            }
            for (std::int64_t kh = 0; kh < kernel_; ++kh) {
              for (std::int64_t kw = 0; kw < kernel_; ++kw) {
                input_grad(b, ((oh * stride_ + kh) * in_.width + (ow * stride_ + kw)) * in_.channels + c) +=
                    output_grad(b, o) * inv_area;
              }
            }
          }
        }
      }
    }
    return input_grad;
  }

 private:
  ImageShape in_;
  std::int64_t kernel_, stride_;
  PoolKind kind_;
  std::int64_t batch_ = 0;
  std::vector<std::int64_t> argmax_;
};

}  // namespace dpsgd::nn

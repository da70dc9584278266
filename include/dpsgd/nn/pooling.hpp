// nn::MaxPool2d and nn::AvgPool2d over NHWC rows: parameter-free, so ghost clipping passes through.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

enum class PoolKind : int { kMax = 0, kAverage = 1 };

// Square windows, no padding. Max pooling sends each output gradient to the window's first maximum.
// Kernels are at most 4096 wide, so a tap's number (below 2^24) is exact in float.
template <typename Scalar>
class Pool2d final : public Layer<Scalar> {
 public:
  Pool2d(ImageShape input, std::int64_t kernel, std::int64_t stride, PoolKind kind)
      : in_(input), kernel_(kernel), stride_(stride), kind_(kind) {
    DPSGD_CHECK_ARG(
        input.height >= 1 && input.width >= 1 && input.channels >= 1,
        "input shape must be positive, got " << input.height << " x " << input.width << " x " << input.channels);
    DPSGD_CHECK_ARG(kernel >= 1 && kernel <= input.height && kernel <= input.width && kernel <= 4096,
                    "kernel must be in [1, min(height, width, 4096)], got " << kernel);
    DPSGD_CHECK_ARG(stride >= 1, "stride must be >= 1, got " << stride);
    DPSGD_CHECK_ARG(kind == PoolKind::kMax || kind == PoolKind::kAverage,
                    "kind must be PoolKind::kMax or kAverage, got " << static_cast<int>(kind));
    for (std::int64_t kh = 0; kh < kernel; ++kh) {
      for (std::int64_t kw = 0; kw < kernel; ++kw) tap_offsets_.push_back(tap_element(0, 0, kh, kw));
    }
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
    if (kind_ == PoolKind::kMax) first_max_tap_.resize(batch_, out.size());
    const Scalar inv_area = Scalar{1} / static_cast<Scalar>(kernel_ * kernel_);
#pragma omp parallel for schedule(static) if (batch_ * out.size() > 32768)
    for (std::int64_t b = 0; b < batch_; ++b) {
      const Scalar* x = input.data() + b * input.outerStride();
      Scalar* y = output.data() + b * out.size();
      for (std::int64_t oh = 0; oh < out.height; ++oh) {
        for (std::int64_t ow = 0; ow < out.width; ++ow) {
          const std::int64_t o = (oh * out.width + ow) * in_.channels;
          Scalar* window = y + o;
          if (kind_ == PoolKind::kMax) {
            window_max(x, oh, ow, window, first_max_tap_.data() + b * out.size() + o);
            continue;
          }
          std::fill(window, window + in_.channels, Scalar{0});
          const Scalar* corner = x + tap_element(oh, ow, 0, 0);
          for (const std::int64_t offset : tap_offsets_) {
            for (std::int64_t c = 0; c < in_.channels; ++c) window[c] += corner[offset + c];
          }
          for (std::int64_t c = 0; c < in_.channels; ++c) window[c] *= inv_area;
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
    const std::int64_t channels = in_.channels;
#pragma omp parallel for schedule(static) if (batch_ * out.size() > 32768)
    for (std::int64_t b = 0; b < batch_; ++b) {
      const Scalar* g = output_grad.data() + b * output_grad.outerStride();
      Scalar* dx = input_grad.data() + b * in_.size();
      if (kind_ == PoolKind::kMax) {
        // Each output's gradient goes to the tap forward chose, in the order of a loop over outputs.
        const Scalar* tap = first_max_tap_.data() + b * out.size();
        for (std::int64_t oh = 0; oh < out.height; ++oh) {
          for (std::int64_t ow = 0; ow < out.width; ++ow) {
            const std::int64_t o = (oh * out.width + ow) * channels, corner = tap_element(oh, ow, 0, 0);
            for (std::int64_t c = 0; c < channels; ++c) {
              dx[corner + tap_offsets_[static_cast<std::size_t>(tap[o + c])] + c] += g[o + c];
            }
          }
        }
        continue;
      }
      for (std::int64_t oh = 0; oh < out.height; ++oh) {
        for (std::int64_t ow = 0; ow < out.width; ++ow) {
          const Scalar* window_grad = g + (oh * out.width + ow) * channels;
          Scalar* corner = dx + tap_element(oh, ow, 0, 0);
          for (const std::int64_t offset : tap_offsets_) {
            for (std::int64_t c = 0; c < channels; ++c) corner[offset + c] += window_grad[c] * inv_area;
          }
        }
      }
    }
    return input_grad;
  }

 private:
  // Writes the maximum of output (oh, ow)'s window, channel by channel, to best, and the number of
  // the first tap holding it (kh * kernel + kw, exact in Scalar) to tap_of: strict > keeps the first
  // maximum in tap order, the reverse scan for equal values finds the same tap (-0 == +0 included),
  // and a NaN in the first tap stays, with tap 0. Two passes of plain selects with one output each,
  // so both vectorise (a branch per element cost a quarter of a CNN step).
  void window_max(const Scalar* x, std::int64_t oh, std::int64_t ow, Scalar* best, Scalar* tap_of) const {
    const std::int64_t channels = in_.channels;
    const Scalar* corner = x + tap_element(oh, ow, 0, 0);
    std::copy(corner, corner + channels, best);
    for (std::size_t t = 1; t < tap_offsets_.size(); ++t) {
      const Scalar* values = corner + tap_offsets_[t];
      for (std::int64_t c = 0; c < channels; ++c) best[c] = values[c] > best[c] ? values[c] : best[c];
    }
    std::fill(tap_of, tap_of + channels, Scalar{0});
    for (auto t = static_cast<std::int64_t>(tap_offsets_.size()) - 1; t >= 0; --t) {
      const Scalar* values = corner + tap_offsets_[static_cast<std::size_t>(t)];
      const auto number = static_cast<Scalar>(t);
      for (std::int64_t c = 0; c < channels; ++c) tap_of[c] = values[c] == best[c] ? number : tap_of[c];
    }
  }

  // The first input element (channel 0) of tap (kh, kw) of output (oh, ow)'s window.
  std::int64_t tap_element(std::int64_t oh, std::int64_t ow, std::int64_t kh, std::int64_t kw) const {
    return ((oh * stride_ + kh) * in_.width + (ow * stride_ + kw)) * in_.channels;
  }

  ImageShape in_;
  std::int64_t kernel_, stride_;
  PoolKind kind_;
  std::int64_t batch_ = 0;
  std::vector<std::int64_t> tap_offsets_;  // tap kh * kernel + kw -> tap_element(0, 0, kh, kw)
  RowMajorMatrix<Scalar> first_max_tap_;   // max pooling: the tap each output came from
};

}  // namespace dpsgd::nn

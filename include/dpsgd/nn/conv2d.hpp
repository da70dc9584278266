// nn::Conv2d: a convolution as im2col + Linear over the output positions, so ghost clipping covers it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/layer.hpp"
#include "dpsgd/nn/linear.hpp"

namespace dpsgd::nn {

// Images are rows in NHWC order: element (h, w, c) of an example sits at (h * width + w) * channels + c.
struct ImageShape {
  std::int64_t height = 0, width = 0, channels = 0;
  std::int64_t size() const { return height * width * channels; }
};

// A square-kernel convolution with zero padding. The im2col matrix holds one row per (example,
// output position) and kernel * kernel * in_channels columns; the convolution is then a Linear
// layer over T = out_height * out_width positions per example, and its per-example gradient norm
// comes from the sequence form of ghost clipping (Gram or materialised, by cost), never from
// per-example weight gradients stored for the whole batch.
template <typename Scalar>
class Conv2d final : public Layer<Scalar> {
 public:
  Conv2d(ImageShape input, std::int64_t out_channels, std::int64_t kernel, std::int64_t stride, std::int64_t padding)
      : in_(input),
        out_channels_(out_channels),
        kernel_(kernel),
        stride_(stride),
        padding_(padding),
        linear_(checked_patch_size(input, kernel), checked_out_channels(out_channels), true) {
    DPSGD_CHECK_ARG(stride >= 1, "stride must be >= 1, got " << stride);
    DPSGD_CHECK_ARG(padding >= 0 && padding < kernel, "padding must be in [0, kernel), got " << padding);
    DPSGD_CHECK_ARG(
        input.height + 2 * padding >= kernel && input.width + 2 * padding >= kernel,
        "kernel " << kernel << " does not fit the padded " << input.height << " x " << input.width << " input");
  }

  ImageShape output_shape() const {
    return {(in_.height + 2 * padding_ - kernel_) / stride_ + 1, (in_.width + 2 * padding_ - kernel_) / stride_ + 1,
            out_channels_};
  }
  std::int64_t positions() const { return output_shape().height * output_shape().width; }
  std::int64_t num_parameters() const override { return linear_.num_parameters(); }
  void bind(Scalar* parameters) override { linear_.bind(parameters); }
  void initialize(std::uint64_t seed, std::uint32_t layer_index) override { linear_.initialize(seed, layer_index); }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    DPSGD_CHECK_ARG(input.cols() == in_.size(),
                    "input must have " << in_.size() << " columns (H*W*C), got " << input.cols());
    batch_ = input.rows();
    const std::int64_t t = positions();
    const std::int64_t patch = linear_.in_features();
    RowMajorMatrix<Scalar> columns(batch_ * t, patch);
    for_each_run(
        [&](std::int64_t b, std::int64_t position) {
          Scalar* row = columns.data() + (b * t + position) * patch;
          std::fill(row, row + patch, Scalar{0});  // taps in the zero padding
        },
        [&](std::int64_t b, std::int64_t position, std::int64_t column, std::int64_t element, std::int64_t count) {
          const Scalar* from = input.data() + b * input.outerStride() + element;
          std::copy(from, from + count, columns.data() + (b * t + position) * patch + column);
        });
    const RowMajorMatrix<Scalar> out = linear_.forward(columns);
    return Eigen::Map<const RowMajorMatrix<Scalar>>(out.data(), batch_, t * out_channels_);
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) override {
    const std::int64_t t = positions();
    const RowMajorMatrix<Scalar> column_grads = linear_.backward(positions_as_rows(output_grad));
    RowMajorMatrix<Scalar> input_grad = RowMajorMatrix<Scalar>::Zero(batch_, in_.size());
    const std::int64_t patch = linear_.in_features();
    for_each_run(
        [](std::int64_t, std::int64_t) {},
        [&](std::int64_t b, std::int64_t position, std::int64_t column, std::int64_t element, std::int64_t count) {
          const Scalar* from = column_grads.data() + (b * t + position) * patch + column;
          Scalar* to = input_grad.data() + b * in_.size() + element;
          for (std::int64_t i = 0; i < count; ++i) to[i] += from[i];
        });
    return input_grad;
  }

  void backward_parameters_only(const ConstRowsRef<Scalar>& output_grad) override {
    linear_.backward_parameters_only(positions_as_rows(output_grad));  // no col2im
  }

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& norms, int group) const override {
    linear_.accumulate_squared_norms(batch, norms, group);
  }
  void accumulate_clipped_gradient(std::int64_t batch, const Eigen::MatrixXd& factors, int group,
                                   std::span<Scalar> grad_slice) const override {
    linear_.accumulate_clipped_gradient(batch, factors, group, grad_slice);
  }

 private:
  // The output gradient (one row of positions x out_channels per example) as one row per
  // (example, position), the rows of the im2col product.
  RowMajorMatrix<Scalar> positions_as_rows(const ConstRowsRef<Scalar>& output_grad) const {
    const std::int64_t t = positions();
    DPSGD_CHECK_ARG(output_grad.rows() == batch_ && output_grad.cols() == t * out_channels_,
                    "output_grad must be " << batch_ << " x " << t * out_channels_ << ", got " << output_grad.rows()
                                           << " x " << output_grad.cols());
    RowMajorMatrix<Scalar> rows(batch_ * t, out_channels_);
    Eigen::Map<RowMajorMatrix<Scalar>>(rows.data(), batch_, t * out_channels_) = output_grad;
    return rows;
  }

  static std::int64_t checked_patch_size(ImageShape input, std::int64_t kernel) {
    DPSGD_CHECK_ARG(
        input.height >= 1 && input.width >= 1 && input.channels >= 1,
        "input shape must be positive, got " << input.height << " x " << input.width << " x " << input.channels);
    DPSGD_CHECK_ARG(kernel >= 1, "kernel must be >= 1, got " << kernel);
    return kernel * kernel * input.channels;
  }
  static std::int64_t checked_out_channels(std::int64_t out_channels) {
    DPSGD_CHECK_ARG(out_channels >= 1, "out_channels must be >= 1, got " << out_channels);
    return out_channels;
  }

  // For every example and output position, calls begin_row(example, position), then
  // visit(example, position, first im2col column, first input element, count) once per kernel row
  // that lies inside the image, for the run of its taps inside the image. In NHWC order such a run
  // is contiguous both in the input row and in the im2col row, so it moves as one block of count
  // values (copying tap by tap cost half the time of a CNN step). The runs come in the order
  // (position, kernel row, kernel column) of a tap-by-tap loop, so col2im adds its terms to each
  // input element in that order. Examples are independent (each writes only its own rows), so they
  // run in parallel.
  template <typename BeginRow, typename Visit>
  void for_each_run(BeginRow&& begin_row, Visit&& visit) const {
    const ImageShape out = output_shape();
    const std::int64_t channels = in_.channels;
#pragma omp parallel for schedule(static) if (batch_ * out.height * out.width * kernel_ * kernel_ > 32768)
    for (std::int64_t b = 0; b < batch_; ++b) {
      for (std::int64_t oh = 0; oh < out.height; ++oh) {
        for (std::int64_t ow = 0; ow < out.width; ++ow) {
          const std::int64_t position = oh * out.width + ow;
          begin_row(b, position);
          const std::int64_t left = ow * stride_ - padding_;  // input column of kernel column 0
          const std::int64_t first = std::max<std::int64_t>(0, -left);
          const std::int64_t last = std::min<std::int64_t>(kernel_, in_.width - left);  // exclusive
          if (first >= last) continue;
          for (std::int64_t kh = 0; kh < kernel_; ++kh) {
            const std::int64_t ih = oh * stride_ - padding_ + kh;
            if (ih < 0 || ih >= in_.height) continue;
            visit(b, position, (kh * kernel_ + first) * channels, (ih * in_.width + left + first) * channels,
                  (last - first) * channels);
          }
        }
      }
    }
  }

  ImageShape in_;
  std::int64_t out_channels_, kernel_, stride_, padding_;
  Linear<Scalar> linear_;
  std::int64_t batch_ = 0;
};

}  // namespace dpsgd::nn

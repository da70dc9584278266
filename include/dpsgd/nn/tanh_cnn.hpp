// nn::add_tanh_cnn: the small tanh CNN used for private MNIST-style training.
#pragma once

#include <cstdint>

#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/pooling.hpp"
#include "dpsgd/nn/sequential.hpp"

namespace dpsgd::nn {

// The CNN of Papernot et al. 2021 ("Tempered sigmoid activations for deep learning with differential
// privacy"), which Tramer & Boneh 2021 train end to end on Fashion-MNIST: conv 8x8 stride 2 (16) -
// tanh - max pool 2 stride 1 - conv 4x4 stride 2 (32) - tanh - max pool 2 stride 1 - linear 32 -
// tanh - linear classes. For 28x28 inputs it has 26,010 parameters. Adds the layers and finalises.
template <typename Scalar>
void add_tanh_cnn(Sequential<Scalar>& model, ImageShape input, std::int64_t classes, std::uint64_t init_seed) {
  auto& conv1 = model.template add<Conv2d<Scalar>>(input, 16, 8, 2, 3);
  model.template add<Activation<Scalar>>(ActivationKind::kTanh);
  auto& pool1 = model.template add<Pool2d<Scalar>>(conv1.output_shape(), 2, 1, PoolKind::kMax);
  auto& conv2 = model.template add<Conv2d<Scalar>>(pool1.output_shape(), 32, 4, 2, 0);
  model.template add<Activation<Scalar>>(ActivationKind::kTanh);
  auto& pool2 = model.template add<Pool2d<Scalar>>(conv2.output_shape(), 2, 1, PoolKind::kMax);
  model.template add<Linear<Scalar>>(pool2.output_shape().size(), 32, true);
  model.template add<Activation<Scalar>>(ActivationKind::kTanh);
  model.template add<Linear<Scalar>>(32, classes, true);
  model.finalize(init_seed);
}

}  // namespace dpsgd::nn

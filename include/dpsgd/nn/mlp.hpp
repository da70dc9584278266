// nn::Mlp: a multi-layer perceptron (Linear, activation, ..., Linear) built on nn::Sequential.
#pragma once

#include <cstdint>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/sequential.hpp"

namespace dpsgd::nn {

template <typename Scalar>
class Mlp : public Sequential<Scalar> {
 public:
  // layer_sizes = {inputs, hidden..., outputs}, at least two entries, each >= 1.
  Mlp(const std::vector<std::int64_t>& layer_sizes, ActivationKind activation, std::uint64_t init_seed) {
    DPSGD_CHECK_ARG(layer_sizes.size() >= 2, "layer_sizes must have at least 2 entries, got " << layer_sizes.size());
    for (std::size_t k = 0; k + 1 < layer_sizes.size(); ++k) {
      this->template add<Linear<Scalar>>(layer_sizes[k], layer_sizes[k + 1], true);
      if (k + 2 < layer_sizes.size()) this->template add<Activation<Scalar>>(activation);
    }
    this->finalize(init_seed);
  }
};

}  // namespace dpsgd::nn

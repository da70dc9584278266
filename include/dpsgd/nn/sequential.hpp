// nn::Sequential: a chain of layers over one flat parameter buffer, with ghost-clipped private gradients.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

// Layers run in order; the parameters of every layer sit in one flat buffer in layer order, so one
// noise stream and one optimiser cover the model. Per-example gradient norms come from each
// parameterised layer's ghost factors and the clipped sum is one GEMM per layer: no per-example
// gradient is ever stored. Add the layers, then call finalize() once.
template <typename Scalar>
class Sequential {
 public:
  Sequential() = default;
  Sequential(const Sequential&) = delete;  // layers point into params_
  Sequential& operator=(const Sequential&) = delete;
  Sequential(Sequential&&) noexcept = default;  // a moved vector keeps its buffer: pointers stay valid
  Sequential& operator=(Sequential&&) noexcept = default;
  virtual ~Sequential() = default;

  template <typename LayerType, typename... Args>
  LayerType& add(Args&&... args) {
    DPSGD_CHECK_ARG(!finalized_, "add() after finalize()");
    auto layer = std::make_unique<LayerType>(std::forward<Args>(args)...);
    LayerType& ref = *layer;
    layers_.push_back(std::move(layer));
    return ref;
  }

  // Allocates the parameter buffer and initialises every layer deterministically from init_seed.
  void finalize(std::uint64_t init_seed) {
    DPSGD_CHECK_ARG(!finalized_, "finalize() called twice");
    DPSGD_CHECK_ARG(!layers_.empty(), "a model needs at least one layer");
    std::int64_t total = 0;
    for (const auto& layer : layers_) {
      if (layer->num_parameters() == 0) continue;
      parameterised_.push_back(layer.get());
      offsets_.push_back(total);
      total += layer->num_parameters();
    }
    DPSGD_CHECK_ARG(total > 0, "a model needs at least one layer with parameters");
    offsets_.push_back(total);
    params_.assign(static_cast<std::size_t>(total), Scalar{0});
    for (std::size_t k = 0; k < parameterised_.size(); ++k) {
      parameterised_[k]->bind(params_.data() + offsets_[k]);
      parameterised_[k]->initialize(init_seed, static_cast<std::uint32_t>(k));
    }
    finalized_ = true;
  }

  std::int64_t num_parameters() const { return static_cast<std::int64_t>(params_.size()); }
  // Layers with parameters: the groups of per-layer clipping.
  int num_layers() const { return static_cast<int>(parameterised_.size()); }
  std::span<Scalar> parameters() { return params_; }
  std::span<const Scalar> parameters() const { return params_; }
  // Where each parameterised layer starts in the flat buffer, plus the total.
  const std::vector<std::int64_t>& layer_offsets() const { return offsets_; }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) {
    check_finalized();
    RowMajorMatrix<Scalar> h = layers_.front()->forward(input);
    for (std::size_t k = 1; k < layers_.size(); ++k) h = layers_[k]->forward(h);
    batch_ = input.rows();
    return h;
  }

  // Back-propagates per-example output gradients (one row per example, not averaged).
  void backward(const ConstRowsRef<Scalar>& output_grads) {
    check_finalized();
    DPSGD_CHECK_ARG(output_grads.rows() == batch_,
                    "output_grads must have " << batch_ << " rows, got " << output_grads.rows());
    // Layers before the first one with parameters need no gradient, and nothing needs that layer's
    // input gradient: its own factors are all it needs.
    const auto first = static_cast<std::size_t>(
        std::find_if(layers_.begin(), layers_.end(), [](const auto& layer) { return layer->num_parameters() > 0; }) -
        layers_.begin());
    if (first == layers_.size()) return;
    if (first + 1 == layers_.size()) {
      layers_[first]->backward_parameters_only(output_grads);
      return;
    }
    RowMajorMatrix<Scalar> g = layers_.back()->backward(output_grads);
    for (std::size_t k = layers_.size() - 1; k-- > first + 1;) g = layers_[k]->backward(g);
    layers_[first]->backward_parameters_only(g);
  }

  // gradient += sum_i c_i grad_i after forward() and backward(). config has one group (flat
  // clipping) or num_layers() groups (per-layer clipping).
  ClipFactors clipped_gradient_sum(std::span<const std::uint8_t> mask, const ClipConfig& config,
                                   std::span<Scalar> gradient) const {
    config.validate();
    DPSGD_CHECK_ARG(
        config.num_groups() == 1 || config.num_groups() == num_layers(),
        "config must have 1 group (flat) or num_layers = " << num_layers() << " groups, got " << config.num_groups());
    check_gradient(gradient);
    const bool per_layer = config.num_groups() > 1;
    SquaredNorms squared_norms = SquaredNorms::Zero(batch_, config.num_groups());
    for (int k = 0; k < num_layers(); ++k)
      parameterised_[k]->accumulate_squared_norms(batch_, squared_norms, per_layer ? k : 0);
    ClipFactors factors = compute_clip_factors(squared_norms, mask, config);
    for (int k = 0; k < num_layers(); ++k) {
      parameterised_[k]->accumulate_clipped_gradient(batch_, factors.factors, per_layer ? k : 0,
                                                     layer_slice(gradient, k));
    }
    return factors;
  }

  // gradient += sum over real examples of grad_i: the non-private baseline, same code path.
  void gradient_sum(std::span<const std::uint8_t> mask, std::span<Scalar> gradient) const {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(mask.size()) == batch_,
                    "mask.size() must equal the batch size " << batch_ << ", got " << mask.size());
    check_gradient(gradient);
    Eigen::MatrixXd ones(batch_, 1);
    for (std::int64_t i = 0; i < batch_; ++i) ones(i, 0) = mask[static_cast<std::size_t>(i)] != 0 ? 1.0 : 0.0;
    for (int k = 0; k < num_layers(); ++k)
      parameterised_[k]->accumulate_clipped_gradient(batch_, ones, 0, layer_slice(gradient, k));
  }

  std::vector<std::int32_t> predict(const ConstRowsRef<Scalar>& input) {
    const RowMajorMatrix<Scalar> logits = forward(input);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(logits.rows()));
    for (Eigen::Index i = 0; i < logits.rows(); ++i) {
      Eigen::Index best;
      logits.row(i).maxCoeff(&best);
      labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(best);
    }
    return labels;
  }

 private:
  void check_finalized() const { DPSGD_CHECK_ARG(finalized_, "call finalize() before using the model"); }
  void check_gradient(std::span<Scalar> gradient) const {
    check_finalized();
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(gradient.size()) == num_parameters(),
                    "gradient must have num_parameters = " << num_parameters() << " entries, got " << gradient.size());
    DPSGD_CHECK_ARG(batch_ > 0, "call forward() and backward() before asking for gradients");
  }
  std::span<Scalar> layer_slice(std::span<Scalar> gradient, int k) const {
    return gradient.subspan(static_cast<std::size_t>(offsets_[k]),
                            static_cast<std::size_t>(offsets_[k + 1] - offsets_[k]));
  }

  std::vector<std::unique_ptr<Layer<Scalar>>> layers_;
  std::vector<Layer<Scalar>*> parameterised_;
  std::vector<std::int64_t> offsets_;
  std::vector<Scalar> params_;
  std::int64_t batch_ = 0;
  bool finalized_ = false;
};

}  // namespace dpsgd::nn

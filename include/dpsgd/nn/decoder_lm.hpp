// nn::DecoderLM: a decoder-only transformer language model over one flat parameter buffer, with
// ghost-clipped per-sequence gradients and the fine-tuning modes (full, bias-only, last layer).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/composite_block.hpp"
#include "dpsgd/nn/embedding.hpp"
#include "dpsgd/nn/layer_norm.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/transformer_block.hpp"

namespace dpsgd::nn {

struct DecoderLMConfig {
  std::int64_t vocab_size = 0;
  std::int64_t context = 0;  // the longest sequence (positions of the position embedding)
  std::int64_t d_model = 64;
  std::int64_t heads = 4;
  std::int64_t layers = 2;
  std::int64_t mlp_hidden = 256;

  void validate() const {
    DPSGD_CHECK_ARG(vocab_size >= 2, "vocab_size must be >= 2, got " << vocab_size);
    DPSGD_CHECK_ARG(context >= 1, "context must be >= 1, got " << context);
    DPSGD_CHECK_ARG(d_model >= 1, "d_model must be >= 1, got " << d_model);
    DPSGD_CHECK_ARG(heads >= 1 && d_model % heads == 0,
                    "heads must be >= 1 and divide d_model = " << d_model << ", got " << heads);
    DPSGD_CHECK_ARG(layers >= 1, "layers must be >= 1, got " << layers);
    DPSGD_CHECK_ARG(mlp_hidden >= 1, "mlp_hidden must be >= 1, got " << mlp_hidden);
  }
};

// Which parameters train. Frozen ones get neither a gradient nor noise (trainable_ranges()).
enum class Trainable : int {
  kAll = 0,        // full training or fine-tuning
  kBiasOnly = 1,   // DP-BiTFiT (Bu et al. 2022): the biases of every linear layer and layer norm
  kLastLayer = 2,  // the output layer (weight and bias) only
};

// Token embedding + position embedding, `layers` pre-norm transformer blocks, a final layer norm and
// a linear head to vocabulary logits (untied). Inputs are `batch` sequences of T <= context token
// ids with a position mask (0 = padding); padding must sit at the end of a sequence (after its real
// tokens), where causal attention keeps it from every real position. One example is one sequence.
// The parts are laid out, bound, initialised and clipped as one CompositeBlock over the model's buffer.
template <typename Scalar>
class DecoderLM : private CompositeBlock<Scalar> {
 public:
  DecoderLM(const DecoderLMConfig& config, std::uint64_t init_seed)
      : config_((config.validate(), config)),
        token_(config.vocab_size, config.d_model),
        position_(config.context, config.d_model),
        final_norm_(config.d_model),
        head_(config.d_model, config.vocab_size, true) {
    this->register_part(token_);
    this->register_part(position_);
    for (std::int64_t l = 0; l < config.layers; ++l) {
      blocks_.push_back(std::make_unique<TransformerBlock<Scalar>>(config.d_model, config.heads, config.mlp_hidden));
      this->register_part(*blocks_.back());
    }
    this->register_part(final_norm_);
    this->register_part(head_);
    params_.assign(static_cast<std::size_t>(num_parameters()), Scalar{0});
    this->bind(params_.data());
    this->initialize(init_seed, 0);
  }
  DecoderLM(const DecoderLM&) = delete;  // parts point into params_
  DecoderLM& operator=(const DecoderLM&) = delete;

  const DecoderLMConfig& config() const { return config_; }
  using CompositeBlock<Scalar>::num_parameters;
  std::span<Scalar> parameters() { return params_; }
  std::span<const Scalar> parameters() const { return params_; }

  void set_trainable(Trainable trainable) {
    DPSGD_CHECK_ARG(
        trainable == Trainable::kAll || trainable == Trainable::kBiasOnly || trainable == Trainable::kLastLayer,
        "trainable must be Trainable::kAll, kBiasOnly or kLastLayer, got " << static_cast<int>(trainable));
    trainable_ = trainable;
    const bool all = trainable == Trainable::kAll, bias = trainable != Trainable::kLastLayer;
    token_.set_trainable(all);
    position_.set_trainable(all);
    for (auto& block : blocks_) {
      for (LayerNorm<Scalar>* norm : {&block->ln1(), &block->ln2()}) norm->set_trainable(all, bias);
      for (Linear<Scalar>* linear :
           {&block->attention().qkv(), &block->attention().proj(), &block->fc1(), &block->fc2()}) {
        linear->set_trainable(all, bias);
      }
    }
    final_norm_.set_trainable(all, bias);
    head_.set_trainable(trainable != Trainable::kBiasOnly, true);
  }
  Trainable trainable() const { return trainable_; }

  // The trainable runs of the flat buffer, in order: the tensors a step noises and updates.
  using CompositeBlock<Scalar>::trainable_ranges;
  std::int64_t num_trainable() const {
    std::int64_t total = 0;
    for (const ParameterRange& range : trainable_ranges()) total += range.size;
    return total;
  }

  // Logits, one row per (example, position). tokens and position_mask hold batch * T entries, T <= context.
  RowMajorMatrix<Scalar> forward(std::span<const std::int32_t> tokens, std::span<const std::uint8_t> position_mask,
                                 std::int64_t batch) {
    DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
    const auto count = static_cast<std::int64_t>(tokens.size());
    DPSGD_CHECK_ARG(count > 0 && count % batch == 0,
                    "tokens.size() = " << count << " must be a positive multiple of batch = " << batch);
    DPSGD_CHECK_ARG(count / batch <= config_.context,
                    "sequences have " << count / batch << " positions, more than context = " << config_.context);
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(position_mask.size()) == count,
                    "position_mask must have tokens.size() = " << count << " entries, got " << position_mask.size());
    batch_ = batch;
    mask_.assign(position_mask.begin(), position_mask.end());
    std::vector<std::int32_t> positions(static_cast<std::size_t>(count));
    for (std::int64_t s = 0; s < count; ++s)
      positions[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(s % (count / batch));
    RowMajorMatrix<Scalar> x = token_.forward(tokens, batch, mask_);
    x += position_.forward(positions, batch, mask_);
    for (auto& block : blocks_) {
      block->set_position_mask(mask_);
      x = block->forward(x, batch);
    }
    final_norm_.set_position_mask(mask_);
    return head_.forward(final_norm_.forward(x));
  }

  // Back-propagates per-example logit gradients (token_cross_entropy's). With only the last layer
  // trainable nothing below the head is visited.
  void backward(const ConstRowsRef<Scalar>& logit_grads) {
    DPSGD_CHECK_ARG(batch_ > 0, "call forward() before backward()");
    RowMajorMatrix<Scalar> grad = head_.backward(logit_grads);
    if (trainable_ == Trainable::kLastLayer) return;
    grad = final_norm_.backward(grad);
    for (auto block = blocks_.rbegin(); block != blocks_.rend(); ++block) grad = (*block)->backward(grad);
    token_.backward(grad);
    position_.backward(grad);
  }

  // gradient (num_parameters entries) += sum_i c_i grad_i over the trainable parameters, after
  // forward() and backward(); c_i from one flat clip norm (config must have one group).
  ClipFactors clipped_gradient_sum(std::span<const std::uint8_t> mask, const ClipConfig& config,
                                   std::span<Scalar> gradient) const {
    config.validate();
    DPSGD_CHECK_ARG(config.num_groups() == 1,
                    "DecoderLM clips flat: config must have 1 group, got " << config.num_groups());
    check_gradient(mask, gradient);
    SquaredNorms squared_norms = SquaredNorms::Zero(batch_, 1);
    this->accumulate_squared_norms(batch_, squared_norms, 0);
    ClipFactors factors = compute_clip_factors(squared_norms, mask, config);
    this->accumulate_clipped_gradient(batch_, factors.factors, 0, gradient);
    return factors;
  }

  // gradient += sum over real examples of grad_i: the non-private baseline on the same code path.
  void gradient_sum(std::span<const std::uint8_t> mask, std::span<Scalar> gradient) const {
    check_gradient(mask, gradient);
    Eigen::MatrixXd ones(batch_, 1);
    for (std::int64_t i = 0; i < batch_; ++i) ones(i, 0) = mask[static_cast<std::size_t>(i)] != 0 ? 1.0 : 0.0;
    this->accumulate_clipped_gradient(batch_, ones, 0, gradient);
  }

 private:
  void check_gradient(std::span<const std::uint8_t> mask, std::span<Scalar> gradient) const {
    DPSGD_CHECK_ARG(batch_ > 0, "call forward() and backward() before asking for gradients");
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(mask.size()) == batch_,
                    "mask.size() must equal the batch size " << batch_ << ", got " << mask.size());
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(gradient.size()) == num_parameters(),
                    "gradient must have num_parameters = " << num_parameters() << " entries, got " << gradient.size());
  }
  DecoderLMConfig config_;
  Embedding<Scalar> token_, position_;
  std::vector<std::unique_ptr<TransformerBlock<Scalar>>> blocks_;
  LayerNorm<Scalar> final_norm_;
  Linear<Scalar> head_;
  std::vector<Scalar> params_;
  Trainable trainable_ = Trainable::kAll;
  std::int64_t batch_ = 0;
  std::vector<std::uint8_t> mask_;
};

}  // namespace dpsgd::nn

// nn::TransformerBlock: a pre-norm decoder block, x + attn(ln1(x)) then x + mlp(ln2(x)), GELU MLP.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/causal_self_attention.hpp"
#include "dpsgd/nn/composite_block.hpp"
#include "dpsgd/nn/layer_norm.hpp"
#include "dpsgd/nn/linear.hpp"

namespace dpsgd::nn {

// The GPT-2 block layout (Radford et al. 2019): layer norm before attention and before the MLP, a
// residual connection around each. Residual connections add the gradient of both branches, so the
// block's backward pass is the sum of the branch's input gradient and the pass-through.
template <typename Scalar>
class TransformerBlock final : public CompositeBlock<Scalar> {
 public:
  TransformerBlock(std::int64_t d_model, std::int64_t heads, std::int64_t mlp_hidden)
      : ln1_(d_model),
        attention_(d_model, heads),
        ln2_(d_model),
        fc1_(d_model, mlp_hidden, true),
        gelu_(ActivationKind::kGelu),
        fc2_(mlp_hidden, d_model, true) {
    this->register_part(ln1_);
    this->register_part(attention_);
    this->register_part(ln2_);
    this->register_part(fc1_);
    this->register_part(fc2_);
  }

  LayerNorm<Scalar>& ln1() { return ln1_; }
  CausalSelfAttention<Scalar>& attention() { return attention_; }
  LayerNorm<Scalar>& ln2() { return ln2_; }
  Linear<Scalar>& fc1() { return fc1_; }
  Linear<Scalar>& fc2() { return fc2_; }

  // Padding positions for the layer norms' per-example gradients; the span must outlive the step.
  void set_position_mask(std::span<const std::uint8_t> mask) {
    ln1_.set_position_mask(mask);
    ln2_.set_position_mask(mask);
  }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input, std::int64_t batch) {
    RowMajorMatrix<Scalar> x = input;
    x += attention_.forward(ln1_.forward(x), batch);
    x += fc2_.forward(gelu_.forward(fc1_.forward(ln2_.forward(x))));
    return x;
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) {
    RowMajorMatrix<Scalar> grad = output_grad;
    grad += ln2_.backward(fc1_.backward(gelu_.backward(fc2_.backward(grad))));
    grad += ln1_.backward(attention_.backward(grad));
    return grad;
  }

 private:
  LayerNorm<Scalar> ln1_;
  CausalSelfAttention<Scalar> attention_;
  LayerNorm<Scalar> ln2_;
  Linear<Scalar> fc1_;
  Activation<Scalar> gelu_;
  Linear<Scalar> fc2_;
};

}  // namespace dpsgd::nn

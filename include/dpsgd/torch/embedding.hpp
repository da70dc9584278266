// dpsgd::torch::Embedding: torch::nn::Embedding that records what ghost clipping needs in private mode.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "dpsgd/torch/ghost_clippable.hpp"

namespace dpsgd::torch {

// y = W[tokens] over integer tokens [B] or [B, ..., T]. Options and initialisation (N(0, 1)) as
// torch::nn::Embedding; padding_idx, max_norm and sparse gradients are not supported (refused). The
// per-example norm is dpsgd::accumulate_embedding_squared_norms: exact with repeated tokens, and no
// vocab x d gradient per example.
class EmbeddingImpl : public ::torch::nn::Cloneable<EmbeddingImpl>, public GhostClippable {
 public:
  EmbeddingImpl(std::int64_t num_embeddings, std::int64_t embedding_dim)
      : EmbeddingImpl(::torch::nn::EmbeddingOptions(num_embeddings, embedding_dim)) {}
  explicit EmbeddingImpl(const ::torch::nn::EmbeddingOptions& options_);

  void reset() override;
  void reset_parameters();
  ::torch::Tensor forward(const ::torch::Tensor& tokens);

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const override;
  void write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) override;

  ::torch::nn::EmbeddingOptions options;
  ::torch::Tensor weight;
};
// The module holder, as TORCH_MODULE(Embedding) would write it (the macro names torch:: unqualified, which
// inside dpsgd::torch means this namespace).
class Embedding : public ::torch::nn::ModuleHolder<EmbeddingImpl> {
 public:
  using ::torch::nn::ModuleHolder<EmbeddingImpl>::ModuleHolder;
  using Impl = EmbeddingImpl;
};

}  // namespace dpsgd::torch

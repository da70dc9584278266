// nn::Embedding: a lookup table y_s = W[t_s] over token sequences, ghost-clipped without a vocab x d
// gradient per example.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/clipping/ghost_embedding.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/detail/initialization.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

// Token (or position) embeddings. Inputs are `batch` sequences of T = tokens.size() / batch ids, rows
// of the output are (example, position) pairs in that order. Positions whose mask entry is 0
// (padding) get a zero row, their id is never read, and they add nothing to the gradient. The norms
// and clipped sums are clipping/ghost_embedding.hpp's: exact for repeated tokens.
template <typename Scalar>
class Embedding final : public ParameterBlock<Scalar> {
 public:
  // Weights start Uniform(-init_bound, init_bound); the default has the standard deviation 0.02 of GPT-2.
  Embedding(std::int64_t vocab_size, std::int64_t dim, double init_bound = 0.02 * std::sqrt(3.0))
      : vocab_(vocab_size), dim_(dim), init_bound_(init_bound) {
    DPSGD_CHECK_ARG(vocab_size >= 1 && vocab_size <= (std::int64_t{1} << 31),
                    "vocab_size must be in [1, 2^31], got " << vocab_size);
    DPSGD_CHECK_ARG(dim >= 1, "dim must be >= 1, got " << dim);
    DPSGD_CHECK_ARG(std::isfinite(init_bound) && init_bound >= 0.0,
                    "init_bound must be finite and >= 0, got " << init_bound);
  }

  std::int64_t vocab_size() const { return vocab_; }
  std::int64_t dim() const { return dim_; }
  std::int64_t num_parameters() const override { return vocab_ * dim_; }
  void bind(Scalar* parameters) override { params_ = parameters; }
  void initialize(std::uint64_t seed, std::uint32_t layer_index) override {
    detail::uniform_initialize(std::span<Scalar>(params_, static_cast<std::size_t>(num_parameters())), init_bound_,
                               seed, layer_index);
  }
  void set_trainable(bool trainable) { trainable_ = trainable; }
  std::vector<ParameterRange> trainable_ranges() const override {
    if (!trainable_) return {};
    return {ParameterRange{0, num_parameters()}};
  }
  Eigen::Map<const RowMajorMatrix<Scalar>> table() const { return {params_, vocab_, dim_}; }

  RowMajorMatrix<Scalar> forward(std::span<const std::int32_t> tokens, std::int64_t batch,
                                 std::span<const std::uint8_t> position_mask = {}) {
    DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
    const auto count = static_cast<std::int64_t>(tokens.size());
    DPSGD_CHECK_ARG(count > 0 && count % batch == 0,
                    "tokens.size() = " << count << " must be a positive multiple of batch = " << batch);
    DPSGD_CHECK_ARG(
        position_mask.empty() || static_cast<std::int64_t>(position_mask.size()) == count,
        "position_mask must be empty or have tokens.size() = " << count << " entries, got " << position_mask.size());
    RowMajorMatrix<Scalar> output(count, dim_);
    for (std::int64_t s = 0; s < count; ++s) {
      if (!position_mask.empty() && position_mask[static_cast<std::size_t>(s)] == 0) {
        output.row(s).setZero();
        continue;
      }
      const std::int32_t t = tokens[static_cast<std::size_t>(s)];
      DPSGD_CHECK_ARG(t >= 0 && t < vocab_,
                      "tokens[" << s << "] must be in [0, vocab_size = " << vocab_ << "), got " << t);
      output.row(s) = table().row(t);
    }
    batch_ = batch;
    if (trainable_) {
      tokens_.assign(tokens.begin(), tokens.end());
      mask_.assign(position_mask.begin(), position_mask.end());
    }
    return output;
  }

  // Keeps dL/dy (one row per position); an embedding has no input gradient.
  void backward(const ConstRowsRef<Scalar>& output_grad) {
    DPSGD_CHECK_ARG(batch_ > 0, "call forward() before backward()");
    if (trainable_) output_grad_ = output_grad;
  }

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms, int group) const override {
    if (!trainable_) return;
    accumulate_embedding_squared_norms<Scalar>(tokens_, output_grad_, batch, vocab_, squared_norms, group, mask_);
  }

  void accumulate_clipped_gradient(std::int64_t batch, const Eigen::MatrixXd& factors, int group,
                                   std::span<Scalar> grad_slice) const override {
    if (!trainable_) return;
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(grad_slice.size()) == num_parameters(),
                    "grad_slice must have " << num_parameters() << " entries, got " << grad_slice.size());
    Eigen::Map<RowMajorMatrix<Scalar>> table_grad(grad_slice.data(), vocab_, dim_);
    accumulate_embedding_clipped_gradient<Scalar>(tokens_, output_grad_, batch, vocab_, factors, group, table_grad,
                                                  mask_);
  }

 private:
  std::int64_t vocab_, dim_;
  double init_bound_;
  bool trainable_ = true;
  Scalar* params_ = nullptr;
  std::int64_t batch_ = 0;
  std::vector<std::int32_t> tokens_;
  std::vector<std::uint8_t> mask_;
  RowMajorMatrix<Scalar> output_grad_;
};

}  // namespace dpsgd::nn

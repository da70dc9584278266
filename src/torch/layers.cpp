// dpsgd::torch layers: forward passes that record, and the clipping math of dpsgd's clipping/ on their records.
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_embedding.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/clipping/layer_norm_gradients.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/torch/embedding.hpp"
#include "dpsgd/torch/layer_norm.hpp"
#include "dpsgd/torch/linear.hpp"

namespace dpsgd::torch {
namespace {

using FloatRows = Eigen::Map<const RowMajorMatrix<float>>;
using MutableFloatRows = Eigen::Map<RowMajorMatrix<float>>;

// A [rows, cols] float32 CPU view of `t` (contiguous: a copy only when t is not). Its first dimension
// must be the batch: the rows of example i are then contiguous (a sequence-first [T, B, d] layout
// would mix examples, and is refused).
::torch::Tensor as_rows(const ::torch::Tensor& t, std::int64_t batch, std::int64_t cols, const char* layer,
                        const char* what) {
  DPSGD_CHECK_ARG(t.defined(), layer << ": no " << what << " was recorded (run a training forward and backward pass "
                                     << "in private mode before the optimiser's step)");
  DPSGD_CHECK_ARG(t.dim() >= 1 && t.size(0) == batch, layer << ": the " << what
                                                            << "'s first dimension must be the batch capacity " << batch
                                                            << ", got " << t.sizes() << " (inputs are batch-first)");
  DPSGD_CHECK_ARG(t.scalar_type() == ::torch::kFloat32 && t.device().is_cpu(),
                  layer << ": " << what << " must be a float32 CPU tensor, got " << t.toString()
                        << " (CUDA tensors are not supported yet)");
  return t.reshape({-1, cols}).contiguous();
}

FloatRows rows_of(const ::torch::Tensor& t) { return {t.data_ptr<float>(), t.size(0), t.size(1)}; }

// p.grad(), zeroed, contiguous and of p's shape.
::torch::Tensor& zeroed_grad(::torch::Tensor& p) {
  ::torch::Tensor& grad = p.mutable_grad();
  if (!grad.defined() || !grad.is_contiguous() || grad.sizes() != p.sizes()) {
    grad = ::torch::zeros_like(p, ::torch::MemoryFormat::Contiguous);
  } else {
    grad.zero_();
  }
  return grad;
}

bool trainable(const ::torch::Tensor& p) { return p.defined() && p.requires_grad(); }

std::span<float> span_of(::torch::Tensor& t) { return {t.data_ptr<float>(), static_cast<std::size_t>(t.numel())}; }

}  // namespace

void GhostClippable::record(const char* layer, bool training, const ::torch::Tensor& input, ::torch::Tensor& output) {
  if (!private_ || !training || !output.requires_grad()) return;
  DPSGD_CHECK_ARG(!input_.defined(),
                  layer << ": a second training forward pass before the optimiser's step (a layer used twice in one "
                           "pass, or a pass without a step); weight sharing is not supported in private mode");
  input_ = input.detach();
  output.register_hook([this](::torch::Tensor grad) { grad_output_ = grad.detach(); });
}

// --- Linear --------------------------------------------------------------------------------------

LinearImpl::LinearImpl(const ::torch::nn::LinearOptions& options_) : options(options_) { reset(); }

void LinearImpl::reset() {
  weight = register_parameter("weight", ::torch::empty({options.out_features(), options.in_features()}));
  bias = options.bias() ? register_parameter("bias", ::torch::empty(options.out_features()))
                        : register_parameter("bias", {}, /*requires_grad=*/false);
  reset_parameters();
}

// torch::nn::Linear's initialisation: Kaiming-uniform weight with a = sqrt(5), bias U(-1/sqrt(fan_in), +).
void LinearImpl::reset_parameters() {
  ::torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    ::torch::nn::init::uniform_(bias, -bound, bound);
  }
}

::torch::Tensor LinearImpl::forward(const ::torch::Tensor& input) {
  ::torch::Tensor output = ::torch::nn::functional::linear(input, weight, bias);
  if (trainable(weight) || trainable(bias)) record("dpsgd::torch::Linear", is_training(), input, output);
  return output;
}

void LinearImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight) && !trainable(bias)) return;
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.out_features(), "dpsgd::torch::Linear", "output gradient");
  if (trainable(weight)) {
    const ::torch::Tensor a = as_rows(input_, batch, options.in_features(), "dpsgd::torch::Linear", "input");
    accumulate_linear_squared_norms<float>(rows_of(a), rows_of(g), batch, trainable(bias), squared_norms, 0);
  } else {
    dpsgd::accumulate_squared_norms<float>(linear_bias_per_example_gradients<float>(rows_of(g), batch), squared_norms,
                                           0);
  }
}

void LinearImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight) && !trainable(bias)) return;
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.out_features(), "dpsgd::torch::Linear", "output gradient");
  std::span<float> bias_grad;
  if (trainable(bias)) bias_grad = span_of(zeroed_grad(bias));
  if (trainable(weight)) {
    const ::torch::Tensor a = as_rows(input_, batch, options.in_features(), "dpsgd::torch::Linear", "input");
    ::torch::Tensor& w = zeroed_grad(weight);
    MutableFloatRows w_rows(w.data_ptr<float>(), w.size(0), w.size(1));
    accumulate_linear_clipped_gradient<float>(rows_of(a), rows_of(g), batch, factors, 0, w_rows, bias_grad);
  } else {
    accumulate_clipped_sum<float>(linear_bias_per_example_gradients<float>(rows_of(g), batch), factors, 0, bias_grad);
  }
}

// --- Embedding -----------------------------------------------------------------------------------

EmbeddingImpl::EmbeddingImpl(const ::torch::nn::EmbeddingOptions& options_) : options(options_) {
  DPSGD_CHECK_ARG(!options.padding_idx().has_value() && !options.max_norm().has_value() && !options.sparse(),
                  "dpsgd::torch::Embedding: padding_idx, max_norm and sparse are not supported (padding positions "
                  "are masked by the batch instead)");
  reset();
}

void EmbeddingImpl::reset() {
  weight = register_parameter("weight", ::torch::empty({options.num_embeddings(), options.embedding_dim()}));
  reset_parameters();
}

void EmbeddingImpl::reset_parameters() { ::torch::nn::init::normal_(weight); }

::torch::Tensor EmbeddingImpl::forward(const ::torch::Tensor& tokens) {
  ::torch::Tensor output = ::torch::embedding(weight, tokens);
  if (trainable(weight)) record("dpsgd::torch::Embedding", is_training(), tokens, output);
  return output;
}

namespace {

// The recorded tokens as int32 (the clipping code's type; vocabularies stay far below 2^31).
std::vector<std::int32_t> int32_tokens(const ::torch::Tensor& tokens, std::int64_t batch) {
  DPSGD_CHECK_ARG(tokens.defined(),
                  "dpsgd::torch::Embedding: no tokens were recorded (run a training forward and "
                  "backward pass in private mode before the optimiser's step)");
  DPSGD_CHECK_ARG(tokens.dim() >= 1 && tokens.size(0) == batch,
                  "dpsgd::torch::Embedding: the tokens' first dimension must be the batch capacity "
                      << batch << ", got " << tokens.sizes() << " (inputs are batch-first)");
  const ::torch::Tensor flat = tokens.reshape({-1}).to(::torch::kInt64).contiguous();
  const std::int64_t* data = flat.data_ptr<std::int64_t>();
  std::vector<std::int32_t> result(static_cast<std::size_t>(flat.numel()));
  for (std::size_t k = 0; k < result.size(); ++k) result[k] = static_cast<std::int32_t>(data[k]);
  return result;
}

}  // namespace

void EmbeddingImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight)) return;
  const std::vector<std::int32_t> tokens = int32_tokens(input_, batch);
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.embedding_dim(), "dpsgd::torch::Embedding", "output gradient");
  accumulate_embedding_squared_norms<float>(tokens, rows_of(g), batch, options.num_embeddings(), squared_norms, 0);
}

void EmbeddingImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight)) return;
  const std::vector<std::int32_t> tokens = int32_tokens(input_, batch);
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.embedding_dim(), "dpsgd::torch::Embedding", "output gradient");
  ::torch::Tensor& w = zeroed_grad(weight);
  MutableFloatRows w_rows(w.data_ptr<float>(), w.size(0), w.size(1));
  accumulate_embedding_clipped_gradient<float>(tokens, rows_of(g), batch, options.num_embeddings(), factors, 0, w_rows);
}

// --- LayerNorm -----------------------------------------------------------------------------------

LayerNormImpl::LayerNormImpl(const ::torch::nn::LayerNormOptions& options_) : options(options_) {
  DPSGD_CHECK_ARG(options.normalized_shape().size() == 1,
                  "dpsgd::torch::LayerNorm: normalized_shape must have one dimension (the last), got "
                      << options.normalized_shape().size());
  reset();
}

void LayerNormImpl::reset() {
  const std::int64_t d = options.normalized_shape()[0];
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", ::torch::empty({d}));
    bias = register_parameter("bias", ::torch::empty({d}));
  } else {
    weight = register_parameter("weight", {}, /*requires_grad=*/false);
    bias = register_parameter("bias", {}, /*requires_grad=*/false);
  }
  reset_parameters();
}

void LayerNormImpl::reset_parameters() {
  if (!options.elementwise_affine()) return;
  ::torch::nn::init::ones_(weight);
  ::torch::nn::init::zeros_(bias);
}

::torch::Tensor LayerNormImpl::forward(const ::torch::Tensor& input) {
  const ::torch::Tensor mean = input.mean(-1, /*keepdim=*/true);
  const ::torch::Tensor var = (input - mean).pow(2).mean(-1, /*keepdim=*/true);
  const ::torch::Tensor normalized = (input - mean) * ::torch::rsqrt(var + options.eps());
  if (!options.elementwise_affine()) return normalized;
  ::torch::Tensor output = normalized * weight + bias;
  if (trainable(weight) || trainable(bias)) record("dpsgd::torch::LayerNorm", is_training(), normalized, output);
  return output;
}

namespace {

// [gamma part | beta part] per example, each column zeroed where that parameter is frozen.
RowMajorMatrix<float> layer_norm_rows(const ::torch::Tensor& normalized, const ::torch::Tensor& grad_output,
                                      std::int64_t d, std::int64_t batch, bool gamma, bool beta) {
  const ::torch::Tensor x = as_rows(normalized, batch, d, "dpsgd::torch::LayerNorm", "normalised input");
  const ::torch::Tensor g = as_rows(grad_output, batch, d, "dpsgd::torch::LayerNorm", "output gradient");
  RowMajorMatrix<float> rows = layer_norm_per_example_gradients<float>(rows_of(x), rows_of(g), batch, true);
  if (!gamma) rows.leftCols(d).setZero();
  if (!beta) rows.rightCols(d).setZero();
  return rows;
}

}  // namespace

void LayerNormImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight) && !trainable(bias)) return;
  const std::int64_t d = options.normalized_shape()[0];
  dpsgd::accumulate_squared_norms<float>(
      layer_norm_rows(input_, grad_output_, d, batch, trainable(weight), trainable(bias)), squared_norms, 0);
}

void LayerNormImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight) && !trainable(bias)) return;
  const std::int64_t d = options.normalized_shape()[0];
  const RowMajorMatrix<float> rows =
      layer_norm_rows(input_, grad_output_, d, batch, trainable(weight), trainable(bias));
  std::vector<float> sum(static_cast<std::size_t>(2 * d), 0.0f);
  accumulate_clipped_sum<float>(rows, factors, 0, sum);
  if (trainable(weight)) std::copy(sum.begin(), sum.begin() + d, zeroed_grad(weight).data_ptr<float>());
  if (trainable(bias)) std::copy(sum.begin() + d, sum.end(), zeroed_grad(bias).data_ptr<float>());
}

}  // namespace dpsgd::torch
